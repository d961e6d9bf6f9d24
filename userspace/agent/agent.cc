#include "agent.h"

#include <malloc.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/log.h"

namespace skiff::agent {

using nlohmann::json;

Agent::Agent(AgentConfig cfg, std::unique_ptr<Source> source, std::unique_ptr<NodeTable> nodes,
             std::unique_ptr<RouteTable> routes)
    : cfg_(std::move(cfg)), source_(std::move(source)), nodes_(std::move(nodes)), routes_(std::move(routes)) {}

void Agent::enable_services(std::unique_ptr<ServiceTables> tables, std::unique_ptr<CtTable> ct) {
    gc_.reset();
    svc_tables_ = std::move(tables);
    svc_sync_ = std::make_unique<ServiceSync>(*svc_tables_);
    ct_ = std::move(ct);
}

void Agent::enable_masquerade(std::unique_ptr<SnatTable> snat) {
    gc_.reset();  // the GC schedule holds the tables it walks
    snat_ = std::move(snat);
}

void Agent::gc() {
    if (!ct_ || !svc_sync_) return;
    if (!gc_) {
        CtCountsReader counts = [this]() -> std::optional<CtDatapathCounts> {
            return reader_ ? reader_->ct_counts() : std::nullopt;
        };
        gc_.emplace(cfg_.ct_timeouts, cfg_.ct_gc_interval_seconds, *ct_, snat_.get(), std::move(counts));
    }
    gc_->tick(GcScheduler::Clock::now(), monotonic_ns(), svc_sync_->backends());
    std::lock_guard g(mu_);
    gc_->report(stats_);
}

void Agent::tick() {
    bool changed = false;
    auto snap = source_->poll();
    if (!snap) {
        std::lock_guard g(mu_);
        if (source_error_ != snap.error().message)
            log::error("source " + source_->describe() + ": " + snap.error().message +
                       " (keeping the programmed state, retrying)");
        source_error_ = snap.error().message;
        ++stats_.source_errors;
    } else {
        std::lock_guard g(mu_);
        if (!source_error_.empty()) log::info("source " + source_->describe() + " is readable again");
        source_error_.clear();
    }
    if (snap && *snap) changed = take(std::move(**snap));
    // Reconcile on a change, when a resync is due (repairs drift), or to
    // retry a pass that failed; a failing source alone changes nothing.
    bool resync_due = std::chrono::steady_clock::now() - last_sync_ >= std::chrono::seconds(cfg_.resync_seconds);
    if (last_good_ && (changed || resync_due || retry_)) reconcile(*last_good_);
    if (trim_due_)
        release_memory(last_good_
                           ? last_good_->nodes.size() + last_good_->services.size() + last_good_->endpoint_slices.size()
                           : 0);
    gc();
}

bool Agent::take(ClusterSpec&& snap) {
    const size_t n = snap.nodes.size() + snap.services.size() + snap.endpoint_slices.size();
    // After a flood the heap is mostly free but stays mapped: give it back
    // once what is held has shrunk to less than half (and by 1000 objects).
    if (n * 2 < held_objects_ && held_objects_ - n >= 1000) trim_due_ = true;
    held_objects_ = std::max(held_objects_, n);
    std::lock_guard g(mu_);
    stats_.source_objects = n;
    if (n > cfg_.max_objects) {
        std::string why = "source " + source_->describe() + " has " + std::to_string(n) +
                          " objects (nodes, services, endpoint slices), more than maxObjects " +
                          std::to_string(cfg_.max_objects) + ": snapshot not applied, keeping the programmed state";
        if (limit_error_ != why) log::error(why);
        limit_error_ = std::move(why);
        ++stats_.snapshots_refused;
        return false;  // snap, and what only it held, goes here
    }
    if (!limit_error_.empty())
        log::info("source " + source_->describe() + " is back within maxObjects (" + std::to_string(n) + " objects)");
    limit_error_.clear();
    last_good_ = std::move(snap);
    return true;
}

void Agent::release_memory(size_t objects) {
    trim_due_ = false;
    held_objects_ = objects;
#ifdef __GLIBC__
    // Freed chunks sit in glibc's free lists, in pages it never returns on
    // its own (only the top of the heap is trimmed): hand back every whole
    // free page, in all arenas.
    malloc_trim(0);
#endif
    std::lock_guard g(mu_);
    ++stats_.memory_trims;
}

void Agent::reconcile(const ClusterSpec& spec) {
    auto start = std::chrono::steady_clock::now();
    last_sync_ = start;
    std::map<Ipv4Prefix, Ipv4> current;
    if (auto have = nodes_->list(); have)
        for (const auto& [cidr, info] : *have)
            if (!(info.flags & SKIFF_NODE_F_HOST)) current[cidr] = Ipv4::from_be(info.node_ip);
    Plan plan = plan_nodes(spec, cfg_.node_name, cfg_.cluster_cidr, current);
    plan.problems.insert(plan.problems.end(), spec.problems.begin(), spec.problems.end());
    auto r = sync_nodes(plan, *nodes_, *routes_, routing_);
    Status conf = ok();
    if (r && plan.local_pod_cidr) conf = write_conflist(cfg_, *plan.local_pod_cidr);
    if (r && conf && snat_) {
        // Never masqueraded: the cluster, configured ranges, every node.
        std::set<Ipv4Prefix> keep{cfg_.cluster_cidr, Ipv4Prefix(cfg_.node_ip, 32)};
        for (const auto& p : cfg_.masquerade.non_masquerade) keep.insert(p);
        for (const auto& nr : plan.routes) keep.insert(Ipv4Prefix(nr.node_ip, 32));
        if (auto s = snat_->sync_nomasq(keep); !s) conf = s;
    }
    std::optional<Result<ServiceSyncStats>> svc;
    double plan_s = 0, apply_s = 0;
    if (r && conf && svc_sync_) {
        // Only services whose objects (or the node) changed are planned again.
        auto t0 = std::chrono::steady_clock::now();
        PlanDelta delta = planner_.update(spec, NodeContext{cfg_.node_ip, plan.local_pod_cidr});
        plan_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (auto& p : planner_.problems()) plan.problems.push_back(std::move(p));
        bool resync = std::chrono::steady_clock::now() - last_full_load_ >= std::chrono::seconds(cfg_.resync_seconds);
        if (resync) {  // re-read the maps: repairs drift under the mirror
            if (auto s = svc_sync_->load(); !s) conf = s;
            last_full_load_ = std::chrono::steady_clock::now();
        }
        auto t1 = std::chrono::steady_clock::now();
        if (conf)
            svc = svc_sync_->needs_full() ? svc_sync_->apply(planner_.plan()) : svc_sync_->apply_changes(delta);
        else
            svc_sync_->forget();  // this delta is lost: the next pass applies the whole plan
        apply_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        if (svc && !*svc) conf = svc->error();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    const size_t frontend_conflicts = svc_sync_ ? planner_.conflicts() : 0;
    std::lock_guard g(mu_);
    if (plan.problems != problems_) {
        // Each problem once, when it appears; a flood of them is summed up.
        constexpr size_t kMaxLogged = 20;
        std::unordered_set<std::string_view> known(problems_.begin(), problems_.end());
        size_t fresh = 0;
        for (const auto& p : plan.problems)
            if (!known.count(p) && ++fresh <= kMaxLogged) log::warn(p);
        if (fresh > kMaxLogged)
            log::warn("... and " + std::to_string(fresh - kMaxLogged) + " more objects skipped (see /healthz)");
    }
    problems_ = std::move(plan.problems);
    stats_.node_conflicts = plan.conflicts;
    stats_.frontend_conflicts = frontend_conflicts;
    local_cidr_ = plan.local_pod_cidr;
    stats_.last_duration_s = secs;
    stats_.last_plan_s = plan_s;
    stats_.last_apply_s = apply_s;
    stats_.total_duration_s += secs;
    retry_ = !r || !conf;
    if (!r || !conf) {
        ++stats_.reconciles_failed;
        sync_error_ = !r ? r.error().message : conf.error().message;
        log::error("reconcile failed: " + sync_error_);
        return;
    }
    ++stats_.reconciles_ok;
    sync_error_.clear();
    stats_.map_writes += r->map_writes;
    stats_.map_deletes += r->map_deletes;
    stats_.route_writes += r->route_writes;
    stats_.route_deletes += r->route_deletes;
    stats_.node_entries = r->nodes;
    if (svc && *svc) {
        stats_.svc_writes += (*svc)->writes;
        stats_.svc_deletes += (*svc)->deletes;
        stats_.frontends = (*svc)->frontends;
        stats_.backends = (*svc)->backends;
    }
    if (r->map_writes + r->map_deletes + r->route_writes + r->route_deletes)
        log::info("reconciled: " + std::to_string(r->map_writes) + " node entries written, " +
                  std::to_string(r->map_deletes) + " removed, " + std::to_string(r->route_writes) +
                  " routes written, " + std::to_string(r->route_deletes) + " removed");
}

std::optional<Ipv4Prefix> Agent::local_pod_cidr() const {
    std::lock_guard g(mu_);
    return local_cidr_;
}

bool Agent::healthy_locked() const {
    return sync_error_.empty() && source_error_.empty() && limit_error_.empty() && stats_.reconciles_ok > 0;
}

std::string Agent::metrics_text() {
    AgentStats stats;
    {
        std::lock_guard g(mu_);
        stats = stats_;
        stats.skipped_objects = problems_.size();
        stats.max_objects = cfg_.max_objects;
        stats.over_limit = !limit_error_.empty();
    }
    return render_metrics(stats, reader_ ? reader_->stats() : DatapathStats{});
}

HttpResponse Agent::handle_http(const std::string& path) {
    if (path == "/metrics") return {200, "text/plain; version=0.0.4", metrics_text()};
    if (path == "/healthz" || path == "/readyz") {
        std::lock_guard g(mu_);
        json j = {{"node", cfg_.node_name},
                  {"podCIDR", local_cidr_ ? local_cidr_->str() : ""},
                  {"sourceError", source_error_},
                  {"objectLimitError", limit_error_},
                  {"objects", stats_.source_objects},
                  {"maxObjects", cfg_.max_objects},
                  {"reconcileError", sync_error_},
                  {"skipped", problems_},
                  {"reconciles", stats_.reconciles_ok}};
        bool ok = healthy_locked() && (path == "/healthz" || local_cidr_.has_value());
        return {ok ? 200 : 503, "application/json", j.dump() + "\n"};
    }
    return {404, "text/plain", "not found\n"};
}

}  // namespace skiff::agent
