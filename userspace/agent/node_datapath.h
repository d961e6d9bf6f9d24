// The node-wide datapath skiff-agent sets up before its loop: the uplink's
// programs, the tunnel device and its programs, and the skiff_config entry
// the programs read.
#pragma once

#include "common/result.h"
#include "config.h"
#include "node_sync.h"

namespace skiff::agent {

struct NodeDatapath {
    int uplink_ifindex = 0;
    int tunnel_ifindex = 0;
    Routing routing;       // the mode, with the uplink's subnets
    unsigned pod_mtu = 0;  // for the conflist: configured, else derived from the uplink
};

// The pods' MTU: the configured one, else the uplink's less the VXLAN
// overhead when any node may be reached through the tunnel.
unsigned pod_mtu(const AgentConfig& cfg, unsigned uplink_mtu);

// Whether the masquerade port range stays clear of the node's ephemeral
// ports (ip_local_port_range as "LOW HIGH"): the node's own connections to
// other nodes' pods are not in the masquerade table.
Status check_masquerade_ports(const MasqueradeConfig& mq, const std::string& ip_local_port_range);

// Attaches from_uplink/to_uplink to the uplink; creates (or keeps) the
// node's flow-based VXLAN device, up, with from_tunnel/to_tunnel attached;
// writes skiff_config. The tunnel device exists in every routing mode, so
// a node still accepts encapsulated traffic from nodes that have not
// switched modes yet. Idempotent: a restarted agent keeps what is right.
Result<NodeDatapath> setup_node_datapath(const AgentConfig& cfg);

}  // namespace skiff::agent
