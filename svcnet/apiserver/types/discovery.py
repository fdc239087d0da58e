"""discovery.k8s.io/v1 types: EndpointSlice."""
from __future__ import annotations

from .dsl import DISCOVERY, define, define_kind

define_kind(DISCOVERY, "EndpointSlice", "discovery.k8s.io", "v1", """
    addressType string go=v1.AddressType
    endpoints []Endpoint list=atomic
    ports []EndpointPort list=atomic
""", required="addressType endpoints")
define(DISCOVERY, "Endpoint", """
    addresses []string list=set
    conditions EndpointConditions
    deprecatedTopology {}string
    hints EndpointHints
    hostname string
    nodeName string
    targetRef core.ObjectReference
    zone string
""", required="addresses")
define(DISCOVERY, "EndpointConditions", """
    ready bool
    serving bool
    terminating bool
""")
define(DISCOVERY, "EndpointHints", "forZones []ForZone list=atomic")
define(DISCOVERY, "ForZone", "name string", required="name")
define(DISCOVERY, "EndpointPort", """
    appProtocol string
    name string
    port int32
    protocol string go=v1.Protocol
""", map_type="atomic")

