"""The paper's baselines, one module each, each a small extension of :class:`learning.core.sac.MultiTaskSAC`:
DnC (policy regularisation, distillation), UDS/CDS data sharing, PCGrad, MCAL, DECAF."""
