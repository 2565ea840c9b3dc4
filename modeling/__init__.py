"""VAE families for speech-emotion representations, as `transformers` models.

``import modeling`` registers every family with ``AutoConfig`` / ``AutoModel``, and marks the classes
so that ``save_pretrained`` writes their code next to the weights (loadable with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` where this project is not installed). Every family's
input comes from `RavdessFeatureExtractor`, registered for ``AutoFeatureExtractor`` the same way.
"""
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from ravdess_dataset.feature_extraction import RavdessFeatureExtractor

from .configuration_fhvae import FHVAEConfig
from .configuration_semisupervised_vae import SemiSupervisedVAEConfig
from .configuration_speech_vae import SpeechVAEConfig
from .distributions import DiagonalGaussian
from .modeling_common import DecoderOutput, EncoderOutput
from .modeling_fhvae import FHVAEModel, FHVAEOutput
from .modeling_semisupervised_vae import SemiSupervisedVAEModel, SemiSupervisedVAEOutput
from .modeling_speech_vae import SpeechVAEModel, SpeechVAEOutput

FAMILIES = {
    SpeechVAEConfig.model_type: (SpeechVAEConfig, SpeechVAEModel),
    FHVAEConfig.model_type: (FHVAEConfig, FHVAEModel),
    SemiSupervisedVAEConfig.model_type: (SemiSupervisedVAEConfig, SemiSupervisedVAEModel),
}

for _config_class, _model_class in FAMILIES.values():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    AutoFeatureExtractor.register(_config_class, RavdessFeatureExtractor, exist_ok=True)
    _config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModel")
RavdessFeatureExtractor.register_for_auto_class()

__all__ = [
    "FAMILIES", "DiagonalGaussian", "EncoderOutput", "DecoderOutput", "RavdessFeatureExtractor",
    "SpeechVAEConfig", "SpeechVAEModel", "SpeechVAEOutput",
    "FHVAEConfig", "FHVAEModel", "FHVAEOutput",
    "SemiSupervisedVAEConfig", "SemiSupervisedVAEModel", "SemiSupervisedVAEOutput",
]
