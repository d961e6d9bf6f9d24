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

skiff_ct_key ct_partner(const skiff_ct_key& k, const skiff_ct_value& v) {
    skiff_ct_key p{};
    p.proto = k.proto;
    if (k.dir == SKIFF_CT_FORWARD) {
        const bool snat = v.flags & SKIFF_CT_F_SNAT;
        p.saddr = v.nat_addr;
        p.sport = v.nat_port;
        p.daddr = snat ? v.snat_addr : k.saddr;
        p.dport = snat ? v.snat_port : k.sport;
        p.dir = SKIFF_CT_REPLY;
    } else {
        p.saddr = v.snat_addr;
        p.sport = v.snat_port;
        p.daddr = v.nat_addr;
        p.dport = v.nat_port;
        p.dir = SKIFF_CT_FORWARD;
    }
    return p;
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
    uint32_t timeout = to.udp;
    if (proto == IPPROTO_TCP) {
        // Never answered (SYNs only, retransmitted or not): tcp_syn.
        if (flags & SKIFF_CT_F_CLOSING)
            timeout = to.tcp_closing;
        else if (!(flags & SKIFF_CT_F_REPLIED))
            timeout = to.tcp_syn;
        else
            timeout = to.tcp_established;
    }
    return now_ns > last && now_ns - last > uint64_t{timeout} * 1000000000ull;
}

}  // namespace

Result<CtGcPass> CtGcPass::start(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                                 const std::map<uint32_t, skiff_backend>& backends) {
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
                            const std::map<uint32_t, skiff_backend>& backends, size_t max_candidates) {
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
                        const std::map<uint32_t, skiff_backend>& backends) {
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
