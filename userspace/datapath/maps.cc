#include "maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pins.h"

namespace skiff::datapath {

Result<EndpointMap> EndpointMap::open(const std::string& pin_dir) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, open_pinned_map(pin_dir, SKIFF_MAP_ENDPOINTS));
    auto sources = open_pinned_map(pin_dir, SKIFF_MAP_POD_SOURCES);
    if (!sources && sources.error().code != ENOENT) return sources.error();
    return EndpointMap(std::move(fd), sources ? std::move(*sources) : UniqueFd());
}

static uint32_t source_slot(uint32_t ifindex) { return ifindex & (SKIFF_POD_SOURCES_MAX - 1); }

Result<skiff_pod_source> EndpointMap::read_source(uint32_t slot, Ipv4 ip) {
    skiff_pod_source v{};
    if (bpf_map_lookup_elem(sources_.get(), &slot, &v) != 0)
        return Error::errno_("look up pod source slot of " + ip.str());
    return v;
}

Status EndpointMap::write_source(uint32_t slot, const skiff_pod_source& v, Ipv4 ip) {
    if (bpf_map_update_elem(sources_.get(), &slot, &v, BPF_ANY) != 0)
        return Error::errno_(std::string(v.ifindex ? "update" : "clear") + " pod source slot of " + ip.str());
    return ok();
}

Status EndpointMap::upsert(Ipv4 ip, const skiff_endpoint_info& info) {
    skiff_endpoint_key k{ip.be()};
    if (auto old = lookup(ip); old && *old && (*old)->ifindex != info.ifindex) SKIFF_TRY(clear_source(ip, **old));
    if (bpf_map_update_elem(fd_.get(), &k, &info, BPF_ANY) != 0) return Error::errno_("update endpoint " + ip.str());
    if (!sources_.valid() || !(info.flags & SKIFF_EP_F_LOCAL) || info.ifindex == 0) return ok();
    // The veth's slot is its own from now on: a pod that shared it falls
    // back to the endpoints map. Another veth's entry is emptied first: a
    // reader sees it, a partly emptied one or the new one, never a mix of
    // two pods' veths and addresses.
    uint32_t slot = source_slot(info.ifindex);
    SKIFF_ASSIGN_OR_RETURN(skiff_pod_source cur, read_source(slot, ip));
    if (cur.ifindex != 0 && cur.ifindex != info.ifindex) SKIFF_TRY(write_source(slot, {}, ip));
    return write_source(slot, {info.ifindex, ip.be()}, ip);
}

// Empties the slot when it still holds this endpoint.
Status EndpointMap::clear_source(Ipv4 ip, const skiff_endpoint_info& info) {
    if (!sources_.valid()) return ok();
    uint32_t slot = source_slot(info.ifindex);
    SKIFF_ASSIGN_OR_RETURN(skiff_pod_source cur, read_source(slot, ip));
    if (cur.ifindex != info.ifindex || cur.ip != ip.be()) return ok();
    return write_source(slot, {}, ip);
}

Status EndpointMap::remove(Ipv4 ip) {
    skiff_endpoint_key k{ip.be()};
    SKIFF_ASSIGN_OR_RETURN(auto old, lookup(ip));
    if (old) SKIFF_TRY(clear_source(ip, *old));
    if (bpf_map_delete_elem(fd_.get(), &k) != 0) return Error::errno_("delete endpoint " + ip.str());
    return ok();
}

Result<std::optional<skiff_endpoint_info>> EndpointMap::lookup(Ipv4 ip) {
    skiff_endpoint_key k{ip.be()};
    skiff_endpoint_info v{};
    if (bpf_map_lookup_elem(fd_.get(), &k, &v) != 0) {
        if (errno == ENOENT) return std::optional<skiff_endpoint_info>{};
        return Error::errno_("lookup endpoint " + ip.str());
    }
    return std::optional<skiff_endpoint_info>{v};
}

Result<std::vector<std::pair<Ipv4, skiff_endpoint_info>>> EndpointMap::list() {
    std::vector<std::pair<Ipv4, skiff_endpoint_info>> out;
    SKIFF_TRY((for_each_entry<skiff_endpoint_key, skiff_endpoint_info>(
        fd_.get(), "endpoints", [&](const auto& k, const auto& v) { out.emplace_back(Ipv4::from_be(k.ip), v); })));
    return out;
}

Result<NodeMap> NodeMap::open(const std::string& pin_dir) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, open_pinned_map(pin_dir, SKIFF_MAP_NODES));
    return NodeMap(std::move(fd));
}

static skiff_node_key node_key(const Ipv4Prefix& p) {
    return skiff_node_key{static_cast<__u32>(p.len()), p.network().be()};
}

Status NodeMap::upsert(const Ipv4Prefix& cidr, const skiff_node_info& info) {
    skiff_node_key k = node_key(cidr);
    if (bpf_map_update_elem(fd_.get(), &k, &info, BPF_ANY) != 0) return Error::errno_("update node " + cidr.str());
    return ok();
}

Status NodeMap::remove(const Ipv4Prefix& cidr) {
    skiff_node_key k = node_key(cidr);
    if (bpf_map_delete_elem(fd_.get(), &k) != 0) return Error::errno_("delete node " + cidr.str());
    return ok();
}

Result<std::vector<std::pair<Ipv4Prefix, skiff_node_info>>> NodeMap::list() {
    std::vector<std::pair<Ipv4Prefix, skiff_node_info>> out;
    SKIFF_TRY((for_each_entry<skiff_node_key, skiff_node_info>(fd_.get(), "nodes", [&](const auto& k, const auto& v) {
        out.emplace_back(Ipv4Prefix(Ipv4::from_be(k.ip), static_cast<int>(k.prefixlen)), v);
    })));
    return out;
}

Result<MetricsMap> MetricsMap::open(const std::string& pin_dir) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, open_pinned_map(pin_dir, SKIFF_MAP_METRICS));
    return MetricsMap(std::move(fd));
}

Result<std::vector<MetricRow>> MetricsMap::read() {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return Error::os(-ncpu, "count possible CPUs");
    std::vector<skiff_metrics_value> vals(static_cast<size_t>(ncpu));
    std::vector<MetricRow> out;
    for (uint32_t idx = 0; idx < SKIFF_METRICS_MAX; ++idx) {
        if (bpf_map_lookup_elem(fd_.get(), &idx, vals.data()) != 0)
            return Error::errno_("read metrics slot " + std::to_string(idx));
        MetricRow r{idx / SKIFF_DIR_MAX, idx % SKIFF_DIR_MAX, 0, 0};
        for (const auto& v : vals) {
            r.packets += v.packets;
            r.bytes += v.bytes;
        }
        if (r.packets) out.push_back(r);
    }
    return out;
}

std::string_view reason_name(uint32_t reason) {
    switch (reason) {
        case SKIFF_REASON_UNSPEC: return "unspec";
        case SKIFF_FWD_LOCAL_POD: return "fwd-local-pod";
        case SKIFF_FWD_STACK: return "fwd-stack";
        case SKIFF_FWD_NON_IP: return "fwd-non-ip";
        case SKIFF_FWD_TTL_EXPIRED: return "fwd-ttl-expired";
        case SKIFF_FWD_REMOTE_NODE: return "fwd-remote-node";
        case SKIFF_FWD_FIB_MISS: return "fwd-fib-miss";
        case SKIFF_SVC_NEW: return "svc-new";
        case SKIFF_SVC_ESTABLISHED: return "svc-established";
        case SKIFF_SVC_REPLY: return "svc-reply";
        case SKIFF_FWD_FIB: return "fwd-fib";
        case SKIFF_SNAT_NEW: return "snat-new";
        case SKIFF_SNAT_EGRESS_XLATE: return "snat-egress";
        case SKIFF_SNAT_INGRESS_XLATE: return "snat-ingress";
        case SKIFF_SNAT_ICMP_ERROR: return "snat-icmp-error";
        case SKIFF_SNAT_NODE_NEW: return "snat-node-new";
        case SKIFF_SNAT_NODE_MOVED: return "snat-node-moved";
        case SKIFF_SNAT_NODE: return "snat-node";
        case SKIFF_SNAT_NODE_UNTRACKED: return "snat-node-untracked";
        case SKIFF_FWD_TUNNEL: return "fwd-tunnel";
        case SKIFF_FWD_FROM_TUNNEL: return "fwd-from-tunnel";
        case SKIFF_FWD_FRAG_NEEDED: return "fwd-frag-needed";
        case SKIFF_CT_ENTRY_INSERTED: return "ct-entry-inserted";
        case SKIFF_CT_ENTRY_REMOVED: return "ct-entry-removed";
        case SKIFF_DROP_INVALID_SOURCE: return "drop-invalid-source";
        case SKIFF_DROP_MALFORMED: return "drop-malformed";
        case SKIFF_DROP_REDIRECT_FAILED: return "drop-redirect-failed";
        case SKIFF_DROP_CSUM: return "drop-csum";
        case SKIFF_DROP_NO_BACKEND: return "drop-no-backend";
        case SKIFF_DROP_CT_FULL: return "drop-ct-full";
        case SKIFF_DROP_FRAGMENT: return "drop-fragment";
        case SKIFF_DROP_NAT_NO_PORT: return "drop-nat-no-port";
        case SKIFF_DROP_TUNNEL_SPOOF: return "drop-tunnel-spoof";
        case SKIFF_DROP_NO_TUNNEL: return "drop-no-tunnel";
        default: return reason >= SKIFF_DROP_BASE ? "drop-unknown" : "fwd-unknown";
    }
}

std::string_view dir_name(uint32_t dir) { return dir == SKIFF_DIR_INGRESS ? "ingress" : "egress"; }

bool reason_is_drop(uint32_t reason) { return reason >= SKIFF_DROP_BASE; }

}  // namespace skiff::datapath
