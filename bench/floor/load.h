// Loading the veth floor's two programs (bench/floor/veth_floor.c) for one
// pod: skiff-floor attaches them, skiff-prog-bench times them next to
// skiff's programs on the same paths.
#pragma once

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

}  // namespace skiff::floor
