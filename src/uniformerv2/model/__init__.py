"""UniFormerV2 network modules."""

from uniformerv2.model.fusion import MultiStageFusion
from uniformerv2.model.global_block import GlobalUniBlock
from uniformerv2.model.local_block import LocalTemporalMHRA, LocalUniBlock
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.model.variants import create_variant, list_variants, register_variant, variant_config

__all__ = [
    "GlobalUniBlock",
    "LocalTemporalMHRA",
    "LocalUniBlock",
    "MultiStageFusion",
    "UniFormerV2",
    "create_variant",
    "list_variants",
    "register_variant",
    "variant_config",
]
