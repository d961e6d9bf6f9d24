#include "snat_gc.h"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "bpf/maps.h"
#include "bpf/pins.h"

namespace skiff::agent {

Result<SnatGcStats> snat_gc(SnatTable& t, const CtTimeouts& to, uint64_t now_ns) {
    SKIFF_ASSIGN_OR_RETURN(NatEntries all, t.list());
    SnatGcStats st;
    std::set<skiff_ct_key, CtKeyLess> paired;
    std::vector<skiff_ct_key> doomed;
    const uint64_t sec = 1000000000ull;
    for (const auto& [k, v] : all) {
        if (k.dir != SKIFF_SNAT_EGRESS) continue;
        ++st.flows;
        // The reply tuple: {dst, node, dst port, NAT port}.
        skiff_ct_key rk{};
        rk.saddr = k.daddr;
        rk.daddr = v.addr;
        rk.sport = k.dport;
        rk.dport = v.port;
        rk.proto = k.proto;
        rk.dir = SKIFF_SNAT_INGRESS;
        auto r = all.find(rk);
        uint64_t last = v.last_seen_ns;
        bool answered = false, closing = v.flags & SKIFF_CT_F_CLOSING;
        if (r != all.end()) {
            paired.insert(rk);
            last = std::max<uint64_t>(last, r->second.last_seen_ns);
            answered = r->second.packets > 0;
            closing = closing || (r->second.flags & SKIFF_CT_F_CLOSING);
        }
        uint32_t timeout = to.udp;
        if (k.proto == IPPROTO_TCP)
            timeout = closing ? to.tcp_closing : (answered ? to.tcp_established : to.tcp_syn);
        if (now_ns > last && now_ns - last > uint64_t{timeout} * sec) {
            doomed.push_back(k);
            if (r != all.end()) doomed.push_back(rk);
            ++st.expired;
        }
    }
    // Ingress entries without their egress half: a claim whose flow never
    // got set up (or whose egress entry was lost); gone once idle.
    for (const auto& [k, v] : all) {
        if (k.dir != SKIFF_SNAT_INGRESS || paired.count(k)) continue;
        if (now_ns > v.last_seen_ns && now_ns - v.last_seen_ns > uint64_t{to.tcp_closing} * sec) {
            doomed.push_back(k);
            ++st.orphans;
        }
    }
    for (const auto& k : doomed) SKIFF_TRY(t.remove(k));
    return st;
}

namespace {

class BpfSnatTable final : public SnatTable {
public:
    explicit BpfSnatTable(std::string pin) : pin_(std::move(pin)) {}
    Result<NatEntries> list() override {
        SKIFF_TRY(open());
        NatEntries out;
        SKIFF_TRY((bpf::for_each_entry<skiff_ct_key, skiff_nat_value>(
            fd_.get(), "snat", [&](const auto& k, const auto& v) { out[k] = v; })));
        return out;
    }
    Status remove(const skiff_ct_key& k) override {
        SKIFF_TRY(open());
        if (bpf_map_delete_elem(fd_.get(), &k) != 0 && errno != ENOENT) return Error::errno_("delete snat entry");
        return ok();
    }

private:
    Status open() {
        if (fd_.valid()) return ok();
        SKIFF_ASSIGN_OR_RETURN(fd_, bpf::open_pinned_map(pin_, SKIFF_MAP_SNAT));
        return ok();
    }
    std::string pin_;
    UniqueFd fd_;
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
