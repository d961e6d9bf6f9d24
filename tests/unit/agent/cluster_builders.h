// Builders for the cluster snapshots unit tests feed the agent: addresses,
// prefixes, nodes.
#pragma once

#include <string>
#include <vector>

#include "agent/cluster.h"

namespace skiff::agent::testbed {

inline Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
inline Ipv4Prefix pfx(const char* s) { return *Ipv4Prefix::parse(s); }

// addr may be null: a node without an address.
inline NodeSpec node(const std::string& name, const char* addr, std::vector<std::string> cidrs) {
    NodeSpec n;
    n.name = name;
    if (addr) n.ip = ip(addr);
    n.pod_cidrs = std::move(cidrs);
    return n;
}

inline ClusterSpec cluster(std::vector<NodeSpec> nodes) {
    ClusterSpec c;
    c.nodes = std::move(nodes);
    return c;
}

}  // namespace skiff::agent::testbed
