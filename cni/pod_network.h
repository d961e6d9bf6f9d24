// Pod plumbing (DESIGN.md section 2) behind an interface, so the command
// logic can be unit-tested with a fake.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/ipv4.h"
#include "common/result.h"
#include "net/netns.h"

namespace skiff::cni {

// The pod's default gateway: link-local, answered by a static neighbour
// entry pointing at the host veth, so nothing in the node namespace (not
// even a default route) is needed for the pod to send.
inline const Ipv4 kPodGateway{0xa9fe0101};  // 169.254.1.1

struct PodSpec {
    std::string host_veth;   // deterministic host-side name
    std::string host_alias;  // "skiff:<network>/<containerID>/<ifname>"
    std::string ifname;      // CNI_IFNAME inside the pod
    Ipv4 ip;
    unsigned mtu = 1500;
};

struct PodLinks {
    int host_ifindex = 0;
    MacAddr host_mac{};
    MacAddr pod_mac{};
    bool host_up = true;  // host_side(): false once DEL took the veth down
};

class PodNetwork {
public:
    virtual ~PodNetwork() = default;
    virtual Result<bool> ifname_exists(const NetNs& ns, const std::string& ifname) = 0;
    // veth pair, pod address/routes/neighbour, host route/neighbour/sysctls.
    // On failure nothing it created is left.
    virtual Result<PodLinks> setup(const NetNs& ns, const PodSpec& spec) = 0;
    // Removes the host veth (and with it the pod end). Absent is fine.
    virtual Status teardown(const std::string& host_veth) = 0;
    // Takes the host veth out of service without deleting it: down, which
    // drops its routes and neighbour entries and the pod's carrier. Cheap,
    // unlike deleting a link (the kernel waits out an RCU barrier, ~20 ms).
    // ENODEV when absent.
    virtual Status set_down(int host_ifindex) = 0;
    // Removes the host veth by ifindex: a later ADD's veth may have its name
    // but never its ifindex (the kernel hands them out cyclically, 2^31 of
    // them). Absent is fine.
    virtual Status teardown(int host_ifindex) = 0;
    virtual Result<bool> link_exists(int ifindex) = 0;
    // Host veth by name; ENODEV when absent.
    virtual Result<PodLinks> host_side(const std::string& host_veth) = 0;
    // CHECK: everything setup() made is still in place.
    virtual Status verify(const NetNs& ns, const PodSpec& spec) = 0;
    // Host veths whose alias starts with prefix (for GC).
    virtual Result<std::vector<std::pair<std::string, std::string>>> host_veths(const std::string& alias_prefix) = 0;
};

std::unique_ptr<PodNetwork> make_netlink_pod_network();

// "skf" + 12 hex digits of a hash of (network, containerID, ifname).
std::string host_veth_name(const std::string& network, const std::string& cid, const std::string& ifname);
std::string host_veth_alias(const std::string& network, const std::string& cid, const std::string& ifname);
std::string host_veth_alias_prefix(const std::string& network);

}  // namespace skiff::cni
