// The node's CNI configuration, written once the agent knows its PodCIDR:
// what runtimes read to run the skiff plugin for each pod.
#pragma once

#include <string>

#include "common/ipv4.h"
#include "common/result.h"
#include "config.h"

namespace skiff::agent {

// "10-skiff.conflist" content for this node.
std::string conflist_for(const AgentConfig& cfg, const Ipv4Prefix& pod_cidr);

// Writes it into cfg.cni_conf_dir when it differs from what is there,
// atomically, then writes the same bytes over themselves for runtimes that
// watch for writes rather than renames (containerd 1.6).
Status write_conflist(const AgentConfig& cfg, const Ipv4Prefix& pod_cidr);

}  // namespace skiff::agent
