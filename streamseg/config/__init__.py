"""Config: one YAML file, one small pydantic module per section."""

from streamseg.config.app import AppConfig
from streamseg.config.camera import CameraConfig
from streamseg.config.loader import deep_merge, load_config
from streamseg.config.model import ModelConfig
from streamseg.config.mqtt import MqttConfig

__all__ = ["AppConfig", "CameraConfig", "ModelConfig", "MqttConfig", "deep_merge", "load_config"]
