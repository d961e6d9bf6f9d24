// Loading the veth floor's programs (bench/floor/veth_floor.c and
// veth_floor_local.c): skiff-floor attaches them, skiff-prog-bench times
// them next to skiff's programs on the same paths.
#pragma once

#include <vector>

#include "common/fd.h"
#include "common/ipv4.h"
#include "common/result.h"

namespace skiff::floor {

struct FloorProgs {
    UniqueFd out;  // floor_out, for the pod's host veth (tc ingress)
    UniqueFd in;   // floor_in, for the uplink (tc ingress)
};

// Loaded (not attached) for one pod: pod_ip behind host veth pod_ifindex.
Result<FloorProgs> load_floor(Ipv4 pod_ip, int pod_ifindex, const MacAddr& pod_mac, const MacAddr& host_mac);

// One pod of a node, for the same-node floor.
struct LocalPod {
    Ipv4 ip;
    int ifindex = 0;  // its host veth
    MacAddr pod_mac{}, host_mac{};
};

// floor_local (veth_floor_local.c), loaded (not attached) with its map
// holding pods: for the tc ingress of each of their host veths.
Result<UniqueFd> load_floor_local(const std::vector<LocalPod>& pods);

}  // namespace skiff::floor
