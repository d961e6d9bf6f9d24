#include "ct_gc.h"

#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace skiff::agent {

bool CtKeyLess::operator()(const skiff_ct_key& a, const skiff_ct_key& b) const {
    return std::memcmp(&a, &b, sizeof(a)) < 0;
}

uint32_t CtTimeouts::for_flow(uint8_t proto, bool answered, bool closing) const {
    if (proto != IPPROTO_TCP) return udp;
    // Never answered (SYNs only, retransmitted or not): tcp_syn.
    return closing ? tcp_closing : (answered ? tcp_established : tcp_syn);
}

bool idle_for(uint64_t now_ns, uint64_t last_ns, uint32_t seconds) {
    return now_ns > last_ns && now_ns - last_ns > uint64_t{seconds} * 1000000000ull;
}

skiff_ct_key flow_key(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint8_t proto, uint8_t dir) {
    skiff_ct_key k{};
    k.saddr = saddr;
    k.daddr = daddr;
    k.sport = sport;
    k.dport = dport;
    k.proto = proto;
    k.dir = dir;
    return k;
}

skiff_ct_key ct_partner(const skiff_ct_key& k, const skiff_ct_value& v) {
    if (k.dir != SKIFF_CT_FORWARD)
        return flow_key(v.snat_addr, v.nat_addr, v.snat_port, v.nat_port, k.proto, SKIFF_CT_FORWARD);
    const bool snat = v.flags & SKIFF_CT_F_SNAT;
    return flow_key(v.nat_addr, snat ? v.snat_addr : k.saddr, v.nat_port, snat ? v.snat_port : k.sport, k.proto,
                    SKIFF_CT_REPLY);
}

namespace {

bool same_key(const skiff_ct_key& a, const skiff_ct_key& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

// Idle longer than its timeout: by the later last-seen of the entries
// given, and their TCP state together.
bool expired(uint8_t proto, const skiff_ct_value& v, const skiff_ct_value* partner, const CtTimeouts& to,
             uint64_t now_ns) {
    uint64_t last = v.last_seen_ns;
    uint8_t flags = v.flags;
    if (partner) {
        last = std::max<uint64_t>(last, partner->last_seen_ns);
        flags |= partner->flags;
    }
    const bool closing = flags & SKIFF_CT_F_CLOSING, answered = flags & SKIFF_CT_F_REPLIED;
    return idle_for(now_ns, last, to.for_flow(proto, answered, closing));
}

}  // namespace

Result<CtGcPass> CtGcPass::start(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                                 const std::map<uint32_t, skiff_l4_addr>& backends) {
    CtGcPass p;
    // Candidates: an entry expired on its own (a connection one of whose
    // halves is closing always has that half here), or with its backend gone.
    auto n = t.walk([&](const skiff_ct_key& k, const skiff_ct_value& v) {
        if (!backends.count(v.backend_id) || expired(k.proto, v, nullptr, to, now_ns)) p.candidates_.push_back(k);
    });
    if (!n) return n.error();
    p.st_.scanned = *n;
    return p;
}

Result<bool> CtGcPass::step(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                            const std::map<uint32_t, skiff_l4_addr>& backends, size_t max_candidates) {
    for (size_t end = next_ + std::min(max_candidates, candidates_.size() - next_); next_ < end; ++next_) {
        const skiff_ct_key& k = candidates_[next_];
        // As they are now, not as the walk saw them. One already deleted as
        // its partner's half is gone (or back, fresh, from a new connection).
        SKIFF_ASSIGN_OR_RETURN(std::optional<skiff_ct_value> v, t.lookup(k));
        if (!v) continue;
        const skiff_ct_key pk = ct_partner(k, *v);
        SKIFF_ASSIGN_OR_RETURN(std::optional<skiff_ct_value> pv, t.lookup(pk));
        if (pv && !same_key(ct_partner(pk, *pv), k)) pv.reset();  // a newer connection's half
        const bool stale = !backends.count(v->backend_id);
        if (!stale && !expired(k.proto, *v, pv ? &*pv : nullptr, to, now_ns)) continue;
        for (const auto* key : {&k, pv ? &pk : nullptr}) {
            if (!key) continue;
            SKIFF_TRY(t.remove(*key));
            ++(stale ? st_.stale_backend : st_.expired);
        }
    }
    return done();
}

Result<CtGcStats> ct_gc(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                        const std::map<uint32_t, skiff_l4_addr>& backends) {
    SKIFF_ASSIGN_OR_RETURN(CtGcPass pass, CtGcPass::start(t, to, now_ns, backends));
    while (!pass.done()) SKIFF_TRY(pass.step(t, to, now_ns, backends, SIZE_MAX));
    return pass.stats();
}

uint64_t ct_evictions(const CtAccount& from, const CtAccount& to) {
    auto d = [](uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b); };
    int64_t gone = d(to.inserted, from.inserted) - d(to.removed_datapath, from.removed_datapath) -
                   d(to.removed_agent, from.removed_agent) - d(to.present, from.present);
    return gone > 0 ? static_cast<uint64_t>(gone) : 0;
}

}  // namespace skiff::agent
