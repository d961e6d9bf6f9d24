// The datapath as the CNI plugin and the agent see it. BpfDatapath is the
// real one; tests substitute fakes to unit-test the control logic.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ipv4.h"
#include "common/result.h"
#include "map_layout.h"

namespace skiff {

class Datapath {
public:
    virtual ~Datapath() = default;

    // Ready to attach pods: pin dir usable, programs loaded and pinned.
    virtual Status ensure_loaded() = 0;
    virtual Status attach_pod(int host_ifindex) = 0;
    virtual Result<bool> pod_attached(int host_ifindex) = 0;
    virtual Status upsert_endpoint(Ipv4 ip, const skiff_endpoint_info& info) = 0;
    virtual Status delete_endpoint(Ipv4 ip) = 0;  // absent is fine
    virtual Result<std::optional<skiff_endpoint_info>> lookup_endpoint(Ipv4 ip) = 0;
    virtual Result<std::vector<std::pair<Ipv4, skiff_endpoint_info>>> list_endpoints() = 0;
    // Whether the agent has programmed cidr as this node's own PodCIDR.
    virtual Result<bool> node_cidr_is_local(const Ipv4Prefix& cidr) {
        (void)cidr;
        return Error{ENOTSUP, "this datapath has no node map"};
    }
};

std::unique_ptr<Datapath> make_bpf_datapath(std::string pin_dir);

}  // namespace skiff
