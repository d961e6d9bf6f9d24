// When the agent collects garbage and how much per tick: every
// gcIntervalSeconds a masquerade pass and the start of a conntrack pass,
// which then goes on in slices of about 20 ms a tick, so that a pass over a
// full table never holds up the next reconcile. Kernel access is the
// tables' and the counter reader's, so the schedule is unit-tested with
// fakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include "agent_metrics.h"
#include "ct_gc.h"
#include "snat_gc.h"

namespace skiff::agent {

using CtCountsReader = std::function<std::optional<CtDatapathCounts>()>;

class GcScheduler {
public:
    using Clock = std::chrono::steady_clock;

    // snat may be null (masquerade off); counts may be empty (no eviction
    // accounting).
    GcScheduler(const CtTimeouts& timeouts, unsigned interval_seconds, CtTable& ct, SnatTable* snat,
                CtCountsReader counts);

    // One tick's share of the work at now (mono_ns: the datapath's clock,
    // CLOCK_MONOTONIC), judging conntrack entries against the backends
    // that exist.
    void tick(Clock::time_point now, uint64_t mono_ns, const std::map<uint32_t, skiff_l4_addr>& backends);

    // What it did so far, into the GC fields of stats.
    void report(AgentStats& stats) const;

    bool pass_under_way() const { return pass_.has_value(); }

private:
    void start(uint64_t mono_ns, const std::map<uint32_t, skiff_l4_addr>& backends);
    void finish(const Result<bool>& done);

    CtTimeouts timeouts_;
    std::chrono::seconds interval_;
    CtTable& ct_;
    SnatTable* snat_;
    CtCountsReader counts_;
    std::optional<Clock::time_point> last_start_;
    std::optional<CtGcPass> pass_;
    double pass_s_ = 0;                 // time the pass under way has taken
    std::optional<CtAccount> ct_base_;  // evictions are counted from the first pass
    bool pressed_ = false;              // conntrack was over 90% at the last pass
    AgentStats st_;                     // the GC fields only
};

}  // namespace skiff::agent
