"""spkid: fast GMM-UBM speaker identification and verification.

The pipeline is audio → features (MFCC+Δ+ΔΔ, VAD, CMVN) → diagonal GMM / UBM → MAP-adapted speaker models →
log-likelihood-ratio scores → decisions and metrics (EER, minDCF, DET).
"""

__version__ = "0.1.0"
