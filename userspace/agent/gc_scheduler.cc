#include "gc_scheduler.h"

#include <algorithm>
#include <string>

#include "common/log.h"

namespace skiff::agent {
namespace {

double since(GcScheduler::Clock::time_point t0) {
    return std::chrono::duration<double>(GcScheduler::Clock::now() - t0).count();
}

// A slice of a conntrack pass per tick: each lookup and delete is a
// syscall, and the next reconcile must not wait for a full table.
constexpr double kSliceS = 0.02;
constexpr size_t kCandidatesPerStep = 256;

}  // namespace

GcScheduler::GcScheduler(const CtTimeouts& timeouts, unsigned interval_seconds, CtTable& ct, SnatTable* snat,
                         CtCountsReader counts)
    : timeouts_(timeouts), interval_(interval_seconds), ct_(ct), snat_(snat), counts_(std::move(counts)) {}

void GcScheduler::tick(Clock::time_point now, uint64_t mono_ns, const std::map<uint32_t, skiff_l4_addr>& backends) {
    if (!pass_) {
        if (last_start_ && now - *last_start_ < interval_) return;
        last_start_ = now;
        start(mono_ns, backends);
        if (!pass_) return;
    }
    // At least one step a tick, so a pass ends however slow the machine.
    auto t0 = Clock::now();
    Result<bool> done = false;
    do {
        done = pass_->step(ct_, timeouts_, mono_ns, backends, kCandidatesPerStep);
    } while (done && !*done && since(t0) < kSliceS);
    double slice_s = since(t0);
    st_.total_gc_s += slice_s;
    pass_s_ += slice_s;
    if (done && !*done) return;
    finish(done);
}

void GcScheduler::start(uint64_t mono_ns, const std::map<uint32_t, skiff_l4_addr>& backends) {
    if (snat_) {
        auto t0 = Clock::now();
        auto ns = snat_gc(*snat_, timeouts_, mono_ns);
        st_.last_snat_gc_s = since(t0);
        st_.total_gc_s += st_.last_snat_gc_s;
        if (ns) {
            st_.snat_expired += ns->expired + ns->orphans;
            st_.snat_flows = ns->flows - ns->expired;
        } else {
            log::warn("NAT GC: " + ns.error().message);
        }
    }
    auto t0 = Clock::now();
    auto pass = CtGcPass::start(ct_, timeouts_, mono_ns, backends);
    // The entry accounting as of the walk: the datapath's counters read
    // right after it, what the walk counted, what was removed here before
    // it. (Read at the end of a pass spanning many ticks, every entry
    // inserted meanwhile would look evicted.)
    std::optional<CtDatapathCounts> dp;
    if (pass && counts_) dp = counts_();
    double walk_s = since(t0);
    st_.total_gc_s += walk_s;
    if (!pass) {
        ++st_.gc_passes;
        st_.last_ct_gc_s = walk_s;
        log::warn("conntrack GC: " + pass.error().message);
        return;
    }
    if (dp) {
        CtAccount acct{dp->inserted, dp->removed, st_.ct_expired + st_.ct_stale, pass->stats().scanned};
        if (!ct_base_) ct_base_ = acct;
        st_.ct_evicted = std::max(st_.ct_evicted, ct_evictions(*ct_base_, acct));
    }
    pass_ = std::move(*pass);
    pass_s_ = walk_s;
}

void GcScheduler::finish(const Result<bool>& done) {
    // Over, done or failed: what it deleted counts either way.
    const CtGcStats st = pass_->stats();
    pass_.reset();
    ++st_.gc_passes;
    st_.last_ct_gc_s = pass_s_;
    st_.ct_expired += st.expired;
    st_.ct_stale += st.stale_backend;
    if (!done) {
        log::warn("conntrack GC: " + done.error().message);
        return;
    }
    const uint64_t deleted = st.expired + st.stale_backend;
    st_.ct_entries = st.scanned > deleted ? st.scanned - deleted : 0;  // a re-created entry can be deleted too
    bool pressed = st_.ct_entries >= SKIFF_CT_MAX / 10 * 9;
    if (pressed && !pressed_)
        log::warn("conntrack is " + std::to_string(st_.ct_entries * 100 / SKIFF_CT_MAX) +
                  "% full: the least recently used connections are being evicted");
    pressed_ = pressed;
}

void GcScheduler::report(AgentStats& s) const {
    s.ct_expired = st_.ct_expired;
    s.ct_stale = st_.ct_stale;
    s.ct_entries = st_.ct_entries;
    s.ct_evicted = st_.ct_evicted;
    s.snat_expired = st_.snat_expired;
    s.snat_flows = st_.snat_flows;
    s.gc_passes = st_.gc_passes;
    s.last_ct_gc_s = st_.last_ct_gc_s;
    s.last_snat_gc_s = st_.last_snat_gc_s;
    s.total_gc_s = st_.total_gc_s;
}

}  // namespace skiff::agent
