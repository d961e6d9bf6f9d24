// Conntrack garbage collection: expire idle entries by protocol and TCP
// state, and purge entries whose backend no longer exists.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/map_layout.h"
#include "common/clock.h"
#include "common/result.h"

namespace skiff::agent {

struct CtTimeouts {
    uint32_t tcp_established = 21600;  // seconds idle
    uint32_t tcp_syn = 60;             // never answered by the backend
    uint32_t tcp_closing = 10;         // FIN or RST seen
    uint32_t udp = 60;

    // A flow's idle timeout: UDP's, or TCP's by the state seen.
    uint32_t for_flow(uint8_t proto, bool answered, bool closing) const;
};

// Whether last_ns lies more than seconds before now_ns.
bool idle_for(uint64_t now_ns, uint64_t last_ns, uint32_t seconds);

// A conntrack or NAT key (addresses and ports in network byte order).
skiff_ct_key flow_key(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint8_t proto, uint8_t dir);

struct CtKeyLess {
    bool operator()(const skiff_ct_key& a, const skiff_ct_key& b) const;
};

struct CtGcStats {
    uint64_t scanned = 0, expired = 0, stale_backend = 0;
};

class CtTable {
public:
    virtual ~CtTable() = default;
    // Calls f for every entry; returns how many there were.
    virtual Result<uint64_t> walk(const std::function<void(const skiff_ct_key&, const skiff_ct_value&)>& f) = 0;
    virtual Result<std::optional<skiff_ct_value>> lookup(const skiff_ct_key& k) = 0;
    virtual Status remove(const skiff_ct_key& k) = 0;  // absent is fine
};

// The other half of a connection: the REPLY key of a FORWARD entry, or the
// FORWARD key of a REPLY entry.
skiff_ct_key ct_partner(const skiff_ct_key& k, const skiff_ct_value& v);

// A connection's two entries are judged together (the later last-seen,
// either half's TCP state) and go together. Entries the walk found expired
// are read again just before they are deleted: a connection that reused
// its tuple since (a new SYN on a closing entry) is kept.
// now_ns on the clock of bpf_ktime_get_ns() (CLOCK_MONOTONIC).
//
// One pass in steps: start() walks the table for candidates, each step()
// judges the next few as they are then, so a pass over a full table (a
// few hundred thousand syscalls) never holds the agent's loop for long.
class CtGcPass {
public:
    static Result<CtGcPass> start(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                                  const std::map<uint32_t, skiff_l4_addr>& backends);
    // Judges up to max_candidates more at now_ns; true when the pass is done.
    Result<bool> step(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                      const std::map<uint32_t, skiff_l4_addr>& backends, size_t max_candidates);
    bool done() const { return next_ >= candidates_.size(); }
    const CtGcStats& stats() const { return st_; }

private:
    std::vector<skiff_ct_key> candidates_;
    size_t next_ = 0;
    CtGcStats st_;
};

// A whole pass at once.
Result<CtGcStats> ct_gc(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                        const std::map<uint32_t, skiff_l4_addr>& backends);

// Conntrack entries accounted for at one moment: inserted and removed by
// the datapath (its counters), removed by the agent, and present (counted
// by a GC walk). The map is LRU: it evicts silently when full, and the
// evictions are what these leave unexplained.
struct CtAccount {
    uint64_t inserted = 0, removed_datapath = 0, removed_agent = 0, present = 0;
};

// The datapath's own conntrack counters: entries inserted and removed.
struct CtDatapathCounts {
    uint64_t inserted = 0, removed = 0;
};

// Entries evicted between two accounts (0 when the difference is negative:
// an insert racing the walk can make it briefly so).
uint64_t ct_evictions(const CtAccount& from, const CtAccount& to);

}  // namespace skiff::agent
