"""core/v1 types that hold configuration and identity: ConfigMap, Secret and ServiceAccount."""
from __future__ import annotations

from .dsl import CORE, define_kind

define_kind(CORE, "ConfigMap", "", "v1", """
    binaryData {}bytes
    data {}string
    immutable bool
""")
# stringData is write-only: the API server merges it into data and never stores or returns it.
define_kind(CORE, "Secret", "", "v1", """
    data {}bytes
    immutable bool
    stringData {}string
    type string go=v1.SecretType
""")
define_kind(CORE, "ServiceAccount", "", "v1", """
    automountServiceAccountToken bool
    imagePullSecrets []LocalObjectReference
    secrets []ObjectReference patch=merge key=name
""")
