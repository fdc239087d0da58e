"""The nftables backend: object names, per-service objects and the nft transaction renderer (pure)."""
from svcnet.proxy.nftables.objects import Element, ServiceObjects, render_service_objects
from svcnet.proxy.nftables.render import (
    NftablesState,
    NftablesSync,
    NftRenderCache,
    dump_nftables,
    render_nftables,
)

__all__ = [
    "Element",
    "NftRenderCache",
    "NftablesState",
    "NftablesSync",
    "ServiceObjects",
    "dump_nftables",
    "render_nftables",
    "render_service_objects",
]
