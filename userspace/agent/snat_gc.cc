#include "snat_gc.h"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bpf/maps.h"
#include "bpf/pins.h"

namespace skiff::agent {

namespace {

// The reply tuple of an EGRESS entry: {dst, node, dst port, NAT port}.
skiff_ct_key reply_key(const skiff_ct_key& k, const skiff_nat_value& v) {
    skiff_ct_key rk{};
    rk.saddr = k.daddr;
    rk.daddr = v.addr;
    rk.sport = k.dport;
    rk.dport = v.port;
    rk.proto = k.proto;
    rk.dir = SKIFF_SNAT_INGRESS;
    return rk;
}

bool idle_for(uint64_t now_ns, uint64_t last_ns, uint32_t seconds) {
    return now_ns > last_ns && now_ns - last_ns > uint64_t{seconds} * 1000000000ull;
}

bool flow_expired(uint8_t proto, const skiff_nat_value& eg, const skiff_nat_value* in, const CtTimeouts& to,
                  uint64_t now_ns) {
    uint64_t last = eg.last_seen_ns;
    bool answered = false, closing = eg.flags & SKIFF_CT_F_CLOSING;
    if (in) {
        last = std::max<uint64_t>(last, in->last_seen_ns);
        answered = in->packets > 0;
        closing = closing || (in->flags & SKIFF_CT_F_CLOSING);
    }
    uint32_t timeout = to.udp;
    if (proto == IPPROTO_TCP) timeout = closing ? to.tcp_closing : (answered ? to.tcp_established : to.tcp_syn);
    return idle_for(now_ns, last, timeout);
}

// Whether the ingress entry rk belongs to the egress entry k (its value
// points back at k's source).
bool points_back(const skiff_nat_value& in, const skiff_ct_key& k) { return in.addr == k.saddr && in.port == k.sport; }

}  // namespace

Result<SnatGcStats> snat_gc(SnatTable& t, const CtTimeouts& to, uint64_t now_ns) {
    SKIFF_ASSIGN_OR_RETURN(NatEntries all, t.list());
    SnatGcStats st;
    std::set<skiff_ct_key, CtKeyLess> paired;
    std::vector<skiff_ct_key> flows, orphans;
    for (const auto& [k, v] : all) {
        if (k.dir != SKIFF_SNAT_EGRESS) continue;
        ++st.flows;
        const skiff_ct_key rk = reply_key(k, v);
        auto r = all.find(rk);
        const bool pair = r != all.end() && points_back(r->second, k);
        if (pair) paired.insert(rk);
        if (flow_expired(k.proto, v, pair ? &r->second : nullptr, to, now_ns)) flows.push_back(k);
    }
    // Ingress entries without their egress half: a claim whose flow never
    // got set up (or whose egress entry was lost); gone once idle.
    for (const auto& [k, v] : all)
        if (k.dir == SKIFF_SNAT_INGRESS && !paired.count(k) && idle_for(now_ns, v.last_seen_ns, to.tcp_closing))
            orphans.push_back(k);

    // As they are now, not as the listing saw them.
    for (const auto& k : flows) {
        SKIFF_ASSIGN_OR_RETURN(std::optional<skiff_nat_value> v, t.lookup(k));
        if (!v) continue;
        const skiff_ct_key rk = reply_key(k, *v);
        SKIFF_ASSIGN_OR_RETURN(std::optional<skiff_nat_value> in, t.lookup(rk));
        if (in && !points_back(*in, k)) in.reset();
        if (!flow_expired(k.proto, *v, in ? &*in : nullptr, to, now_ns)) continue;
        SKIFF_TRY(t.remove(k));
        if (in) SKIFF_TRY(t.remove(rk));
        ++st.expired;
    }
    for (const auto& k : orphans) {
        SKIFF_ASSIGN_OR_RETURN(std::optional<skiff_nat_value> v, t.lookup(k));
        if (!v || !idle_for(now_ns, v->last_seen_ns, to.tcp_closing)) continue;
        SKIFF_TRY(t.remove(k));
        ++st.orphans;
    }
    return st;
}

namespace {

class BpfSnatTable final : public SnatTable {
public:
    explicit BpfSnatTable(std::string pin) : map_(std::move(pin), SKIFF_MAP_SNAT) {}
    Result<NatEntries> list() override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        NatEntries out;
        SKIFF_TRY((bpf::for_each_entry<skiff_ct_key, skiff_nat_value>(
            fd, "snat", [&](const auto& k, const auto& v) { out[k] = v; })));
        return out;
    }
    Result<std::optional<skiff_nat_value>> lookup(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return bpf::lookup_entry<skiff_nat_value>(fd, k, "snat");
    }
    Status remove(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return bpf::delete_entry(fd, k, "snat");
    }

private:
    bpf::LazyPinnedMap map_;
};

}  // namespace

std::unique_ptr<SnatTable> make_bpf_snat_table(const std::string& pin_dir) {
    return std::make_unique<BpfSnatTable>(pin_dir);
}

Status sync_nomasq(const std::string& pin_dir, const std::set<Ipv4Prefix>& want) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, bpf::open_pinned_map(pin_dir, SKIFF_MAP_NOMASQ));
    std::set<Ipv4Prefix> have;
    SKIFF_TRY((bpf::for_each_entry<skiff_node_key, uint32_t>(fd.get(), "nomasq", [&](const auto& k, uint32_t) {
        have.insert(Ipv4Prefix(Ipv4::from_be(k.ip), static_cast<int>(k.prefixlen)));
    })));
    uint32_t one = 1;
    for (const auto& p : want) {
        if (have.count(p)) continue;
        skiff_node_key k{static_cast<__u32>(p.len()), p.network().be()};
        if (bpf_map_update_elem(fd.get(), &k, &one, BPF_ANY) != 0) return Error::errno_("update nomasq " + p.str());
    }
    for (const auto& p : have) {
        if (want.count(p)) continue;
        skiff_node_key k{static_cast<__u32>(p.len()), p.network().be()};
        if (bpf_map_delete_elem(fd.get(), &k) != 0 && errno != ENOENT) return Error::errno_("delete nomasq " + p.str());
    }
    return ok();
}

}  // namespace skiff::agent
