#include "snat_gc.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace skiff::agent {

namespace {

bool flow_expired(uint8_t proto, const skiff_nat_value& eg, const skiff_nat_value* in, const CtTimeouts& to,
                  uint64_t now_ns) {
    uint64_t last = eg.last_seen_ns;
    bool answered = false, closing = eg.flags & SKIFF_CT_F_CLOSING;
    if (in) {
        last = std::max<uint64_t>(last, in->last_seen_ns);
        answered = in->packets > 0;
        closing = closing || (in->flags & SKIFF_CT_F_CLOSING);
    }
    return idle_for(now_ns, last, to.for_flow(proto, answered, closing));
}

// Whether the ingress entry rk belongs to the egress entry k (its value
// points back at k's source).
bool points_back(const skiff_nat_value& in, const skiff_ct_key& k) { return in.addr == k.saddr && in.port == k.sport; }

}  // namespace

skiff_ct_key snat_partner(const skiff_ct_key& k, const skiff_nat_value& v) {
    return flow_key(k.daddr, v.addr, k.dport, v.port, k.proto, SKIFF_SNAT_INGRESS);
}

Result<SnatGcStats> snat_gc(SnatTable& t, const CtTimeouts& to, uint64_t now_ns) {
    SKIFF_ASSIGN_OR_RETURN(NatEntries all, t.list());
    SnatGcStats st;
    std::set<skiff_ct_key, CtKeyLess> paired;
    std::vector<skiff_ct_key> flows, orphans;
    for (const auto& [k, v] : all) {
        if (k.dir != SKIFF_SNAT_EGRESS) continue;
        ++st.flows;
        const skiff_ct_key rk = snat_partner(k, v);
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
        const skiff_ct_key rk = snat_partner(k, *v);
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

}  // namespace skiff::agent
