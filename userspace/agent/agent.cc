#include "agent.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "bpf/maps.h"
#include "common/files.h"
#include "common/log.h"

namespace skiff::agent {

using nlohmann::json;

Agent::Agent(AgentConfig cfg, std::unique_ptr<Source> source, std::unique_ptr<NodeTable> nodes,
             std::unique_ptr<RouteTable> routes)
    : cfg_(std::move(cfg)), source_(std::move(source)), nodes_(std::move(nodes)), routes_(std::move(routes)) {}

std::string conflist_for(const AgentConfig& cfg, const Ipv4Prefix& pod_cidr) {
    json plugin = {{"type", "skiff"},           {"podCIDR", pod_cidr.str()},
                   {"clusterCIDR", cfg.cluster_cidr.str()}, {"mtu", cfg.mtu},
                   {"pinPath", cfg.pin_path},   {"stateDir", cfg.state_dir},
                   {"requireAgent", true}};
    if (!cfg.cni_log_file.empty()) plugin["logFile"] = cfg.cni_log_file;
    json conf = {{"cniVersion", cfg.cni_version}, {"name", "skiff"}, {"plugins", json::array({plugin})}};
    return conf.dump(2) + "\n";
}

Status Agent::write_conflist(const Ipv4Prefix& pod_cidr) {
    std::string path = cfg_.cni_conf_dir + "/10-skiff.conflist";
    std::string want = conflist_for(cfg_, pod_cidr);
    if (auto have = read_file(path); have && *have == want) return ok();
    SKIFF_TRY(mkdir_p(cfg_.cni_conf_dir, 0755));
    SKIFF_TRY(write_file_atomic(path, want));
    // containerd 1.6 reloads its CNI config on a write, not on a create (a
    // rename is one): write the same bytes over themselves, so a reader
    // never sees anything but the whole file and the runtime hears of it.
    if (UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC)); !fd.valid() ||
                                                                 ::pwrite(fd.get(), want.data(), want.size(), 0) < 0)
        log::warn("cannot touch " + path + " for runtimes that watch for writes: " + std::strerror(errno));
    log::info("wrote " + path + " (PodCIDR " + pod_cidr.str() + ")");
    return ok();
}

void Agent::enable_services(std::unique_ptr<ServiceTables> tables, std::unique_ptr<CtTable> ct) {
    svc_tables_ = std::move(tables);
    svc_sync_ = std::make_unique<ServiceSync>(*svc_tables_);
    ct_ = std::move(ct);
}

void Agent::enable_masquerade(std::unique_ptr<SnatTable> snat) { snat_ = std::move(snat); }

void Agent::gc() {
    if (!ct_ || !svc_sync_) return;
    using Clock = std::chrono::steady_clock;
    auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    if (!ct_pass_) {
        auto now = Clock::now();
        if (now - last_gc_ < std::chrono::seconds(cfg_.ct_gc_interval_seconds)) return;
        last_gc_ = now;
        if (snat_) {
            auto ns = snat_gc(*snat_, cfg_.ct_timeouts, monotonic_ns());
            std::lock_guard g(mu_);
            last_snat_gc_s_ = since(now);
            total_gc_s_ += last_snat_gc_s_;
            if (ns) {
                snat_expired_ += ns->expired + ns->orphans;
                snat_flows_ = ns->flows - ns->expired;
            } else {
                log::warn("NAT GC: " + ns.error().message);
            }
        }
        auto t0 = Clock::now();
        auto pass = CtGcPass::start(*ct_, cfg_.ct_timeouts, monotonic_ns(), svc_sync_->backends());
        // The entry accounting as of the walk: the datapath's counters read
        // right after it, what the walk counted, what the agent removed
        // before it. (Read at the end of a pass spanning many ticks, every
        // entry inserted meanwhile would look evicted.)
        CtAccount acct;
        if (pass)
            if (auto m = bpf::MetricsMap::open(cfg_.pin_path); m)
                if (auto rows = m->read(); rows)
                    for (const auto& r : *rows) {
                        if (r.reason == SKIFF_CT_ENTRY_INSERTED) acct.inserted += r.packets;
                        if (r.reason == SKIFF_CT_ENTRY_REMOVED) acct.removed_datapath += r.packets;
                    }
        double walk_s = since(t0);
        std::lock_guard g(mu_);
        total_gc_s_ += walk_s;
        if (!pass) {
            ++gc_passes_;
            last_ct_gc_s_ = walk_s;
            log::warn("conntrack GC: " + pass.error().message);
            return;
        }
        acct.removed_agent = ct_expired_ + ct_stale_;
        acct.present = pass->stats().scanned;
        if (!ct_base_) ct_base_ = acct;  // evictions are counted from the agent's start
        ct_evicted_ = std::max(ct_evicted_, ct_evictions(*ct_base_, acct));
        ct_pass_ = std::move(*pass);
        ct_pass_s_ = walk_s;
    }
    // The candidates a slice per tick: each lookup and delete is a syscall,
    // and a pass over a full table must not hold up the next reconcile.
    constexpr double kSliceS = 0.02;
    auto t0 = Clock::now();
    Result<bool> done = false;
    while (done && !*done && since(t0) < kSliceS)
        done = ct_pass_->step(*ct_, cfg_.ct_timeouts, monotonic_ns(), svc_sync_->backends(), 256);
    std::lock_guard g(mu_);
    double slice_s = since(t0);
    total_gc_s_ += slice_s;
    ct_pass_s_ += slice_s;
    if (done && !*done) return;
    // The pass is over, done or failed: what it deleted counts either way.
    const CtGcStats st = ct_pass_->stats();
    ct_pass_.reset();
    ++gc_passes_;
    last_ct_gc_s_ = ct_pass_s_;
    ct_expired_ += st.expired;
    ct_stale_ += st.stale_backend;
    if (!done) {
        log::warn("conntrack GC: " + done.error().message);
        return;
    }
    const uint64_t deleted = st.expired + st.stale_backend;
    ct_entries_ = st.scanned > deleted ? st.scanned - deleted : 0;  // a re-created entry can be deleted too
    bool pressed = ct_entries_ >= SKIFF_CT_MAX / 10 * 9;
    if (pressed && !ct_pressed_)
        log::warn("conntrack is " + std::to_string(ct_entries_ * 100 / SKIFF_CT_MAX) +
                  "% full: the least recently used connections are being evicted");
    ct_pressed_ = pressed;
}

void Agent::tick() {
    bool changed = false;
    auto snap = source_->poll();
    if (!snap) {
        std::lock_guard g(mu_);
        if (source_error_ != snap.error().message) log::error("source " + source_->describe() + ": " + snap.error().message +
                                                              " (keeping the programmed state, retrying)");
        source_error_ = snap.error().message;
        ++source_errors_;
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
    if (trim_due_) release_memory(last_good_ ? last_good_->nodes.size() + last_good_->services.size() +
                                                   last_good_->endpoint_slices.size()
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
    source_objects_ = n;
    if (n > cfg_.max_objects) {
        std::string why = "source " + source_->describe() + " has " + std::to_string(n) +
                          " objects (nodes, services, endpoint slices), more than maxObjects " +
                          std::to_string(cfg_.max_objects) + ": snapshot not applied, keeping the programmed state";
        if (limit_error_ != why) log::error(why);
        limit_error_ = std::move(why);
        ++snapshots_refused_;
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
    ++memory_trims_;
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
    if (r && plan.local_pod_cidr) conf = write_conflist(*plan.local_pod_cidr);
    if (r && conf && snat_) {
        // Never masqueraded: the cluster, configured ranges, every node.
        std::set<Ipv4Prefix> keep{cfg_.cluster_cidr, Ipv4Prefix(cfg_.node_ip, 32)};
        for (const auto& p : cfg_.masquerade.non_masquerade) keep.insert(p);
        for (const auto& nr : plan.routes) keep.insert(Ipv4Prefix(nr.node_ip, 32));
        if (auto s = sync_nomasq(cfg_.pin_path, keep); !s) conf = s;
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
        if (conf) svc = svc_sync_->needs_full() ? svc_sync_->apply(planner_.plan()) : svc_sync_->apply_changes(delta);
        else svc_sync_->forget();  // this delta is lost: the next pass applies the whole plan
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
    node_conflicts_ = plan.conflicts;
    frontend_conflicts_ = frontend_conflicts;
    local_cidr_ = plan.local_pod_cidr;
    last_duration_s_ = secs;
    last_plan_s_ = plan_s;
    last_apply_s_ = apply_s;
    total_duration_s_ += secs;
    retry_ = !r || !conf;
    if (!r || !conf) {
        ++reconciles_failed_;
        sync_error_ = !r ? r.error().message : conf.error().message;
        log::error("reconcile failed: " + sync_error_);
        return;
    }
    ++reconciles_ok_;
    sync_error_.clear();
    map_writes_ += r->map_writes;
    map_deletes_ += r->map_deletes;
    route_writes_ += r->route_writes;
    route_deletes_ += r->route_deletes;
    node_entries_ = r->nodes;
    if (svc && *svc) {
        svc_writes_ += (*svc)->writes;
        svc_deletes_ += (*svc)->deletes;
        frontends_ = (*svc)->frontends;
        backends_ = (*svc)->backends;
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

bool Agent::healthy() const {
    std::lock_guard g(mu_);
    return sync_error_.empty() && source_error_.empty() && limit_error_.empty() && reconciles_ok_ > 0;
}

std::string Agent::metrics_text() {
    std::string out;
    auto line = [&](const std::string& name, const std::string& labels, double v) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
    };
    auto head = [&](const std::string& name, const char* type, const char* help) {
        out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    {
        std::lock_guard g(mu_);
        head("skiff_agent_reconciles_total", "counter", "Reconcile passes by result.");
        line("skiff_agent_reconciles_total", "result=\"ok\"", static_cast<double>(reconciles_ok_));
        line("skiff_agent_reconciles_total", "result=\"error\"", static_cast<double>(reconciles_failed_));
        head("skiff_agent_reconcile_duration_seconds", "summary", "Time spent reconciling.");
        line("skiff_agent_reconcile_duration_seconds_sum", "", total_duration_s_);
        line("skiff_agent_reconcile_duration_seconds_count", "", static_cast<double>(reconciles_ok_ + reconciles_failed_));
        head("skiff_agent_last_reconcile_duration_seconds", "gauge", "Duration of the last reconcile.");
        line("skiff_agent_last_reconcile_duration_seconds", "", last_duration_s_);
        head("skiff_agent_last_services_duration_seconds", "gauge", "Last reconcile's service planning and map sync.");
        line("skiff_agent_last_services_duration_seconds", "phase=\"plan\"", last_plan_s_);
        line("skiff_agent_last_services_duration_seconds", "phase=\"apply\"", last_apply_s_);
        head("skiff_agent_source_errors_total", "counter", "Polls of the source that failed.");
        line("skiff_agent_source_errors_total", "", static_cast<double>(source_errors_));
        head("skiff_agent_skipped_objects", "gauge", "Source objects skipped as invalid in the last reconcile.");
        line("skiff_agent_skipped_objects", "", static_cast<double>(problems_.size()));
        head("skiff_agent_conflicts", "gauge",
             "Objects skipped in the last reconcile for claiming what another holds (a frontend, a PodCIDR).");
        line("skiff_agent_conflicts", "kind=\"frontend\"", static_cast<double>(frontend_conflicts_));
        line("skiff_agent_conflicts", "kind=\"podcidr\"", static_cast<double>(node_conflicts_));
        head("skiff_agent_source_objects", "gauge", "Nodes, Services and EndpointSlices in the source's last snapshot.");
        line("skiff_agent_source_objects", "", static_cast<double>(source_objects_));
        head("skiff_agent_max_objects", "gauge", "maxObjects: larger snapshots are not applied.");
        line("skiff_agent_max_objects", "", static_cast<double>(cfg_.max_objects));
        head("skiff_agent_source_over_limit", "gauge", "1 while the source's last snapshot is over maxObjects.");
        line("skiff_agent_source_over_limit", "", limit_error_.empty() ? 0 : 1);
        head("skiff_agent_snapshots_refused_total", "counter", "Snapshots not applied for being over maxObjects.");
        line("skiff_agent_snapshots_refused_total", "", static_cast<double>(snapshots_refused_));
        head("skiff_agent_memory_trims_total", "counter", "Times freed memory was handed back after the model shrank.");
        line("skiff_agent_memory_trims_total", "", static_cast<double>(memory_trims_));
        head("skiff_agent_writes_total", "counter", "Datapath writes by target and operation.");
        line("skiff_agent_writes_total", "target=\"node_map\",op=\"upsert\"", static_cast<double>(map_writes_));
        line("skiff_agent_writes_total", "target=\"node_map\",op=\"delete\"", static_cast<double>(map_deletes_));
        line("skiff_agent_writes_total", "target=\"route\",op=\"upsert\"", static_cast<double>(route_writes_));
        line("skiff_agent_writes_total", "target=\"route\",op=\"delete\"", static_cast<double>(route_deletes_));
        line("skiff_agent_writes_total", "target=\"services\",op=\"upsert\"", static_cast<double>(svc_writes_));
        line("skiff_agent_writes_total", "target=\"services\",op=\"delete\"", static_cast<double>(svc_deletes_));
        head("skiff_agent_conntrack_gc_deleted_total", "counter", "Conntrack entries removed by the agent.");
        line("skiff_agent_conntrack_gc_deleted_total", "reason=\"expired\"", static_cast<double>(ct_expired_));
        line("skiff_agent_conntrack_gc_deleted_total", "reason=\"stale_backend\"", static_cast<double>(ct_stale_));
        head("skiff_agent_gc_duration_seconds", "summary",
             "Busy time in GC, conntrack and masquerade together (sum); passes ended (count).");
        line("skiff_agent_gc_duration_seconds_sum", "", total_gc_s_);
        line("skiff_agent_gc_duration_seconds_count", "", static_cast<double>(gc_passes_));
        head("skiff_agent_last_gc_duration_seconds", "gauge",
             "Busy time of the last GC pass, by table (a conntrack pass runs in slices over several ticks).");
        line("skiff_agent_last_gc_duration_seconds", "table=\"conntrack\"", last_ct_gc_s_);
        line("skiff_agent_last_gc_duration_seconds", "table=\"snat\"", last_snat_gc_s_);
        head("skiff_map_entries", "gauge", "Entries in the datapath maps.");
        line("skiff_map_entries", "map=\"nodes\"", static_cast<double>(node_entries_));
        line("skiff_map_entries", "map=\"frontends\"", static_cast<double>(frontends_));
        line("skiff_map_entries", "map=\"backends\"", static_cast<double>(backends_));
        line("skiff_map_entries", "map=\"conntrack\"", static_cast<double>(ct_entries_));
        line("skiff_map_entries", "map=\"snat_flows\"", static_cast<double>(snat_flows_));
        head("skiff_agent_snat_gc_deleted_total", "counter", "Masquerade flows expired by the agent.");
        line("skiff_agent_snat_gc_deleted_total", "", static_cast<double>(snat_expired_));
        head("skiff_conntrack_evictions_total", "counter",
             "Conntrack entries the full LRU map evicted since the agent started (inserted - removed - present).");
        line("skiff_conntrack_evictions_total", "", static_cast<double>(ct_evicted_));
        head("skiff_map_pressure", "gauge", "Fraction of the map in use.");
        line("skiff_map_pressure", "map=\"conntrack\"", static_cast<double>(ct_entries_) / SKIFF_CT_MAX);
        head("skiff_map_capacity", "gauge", "Entries the datapath maps can hold (conntrack evicts least recently used).");
        line("skiff_map_capacity", "map=\"conntrack\"", SKIFF_CT_MAX);
        line("skiff_map_capacity", "map=\"backends\"", SKIFF_BACKENDS_MAX);
        line("skiff_map_capacity", "map=\"services\"", SKIFF_SERVICES_MAX);
        line("skiff_map_capacity", "map=\"snat\"", SKIFF_SNAT_MAX);
    }
    if (auto eps = bpf::EndpointMap::open(cfg_.pin_path); eps)
        if (auto l = eps->list(); l) line("skiff_map_entries", "map=\"endpoints\"", static_cast<double>(l->size()));
    if (auto m = bpf::MetricsMap::open(cfg_.pin_path); m) {
        if (auto rows = m->read(); rows) {
            auto verdict = [](const auto& r) {
                return r.reason != SKIFF_CT_ENTRY_INSERTED && r.reason != SKIFF_CT_ENTRY_REMOVED;
            };
            head("skiff_datapath_packets_total", "counter", "Packets by verdict reason and direction.");
            for (const auto& r : *rows)
                if (verdict(r)) line("skiff_datapath_packets_total",
                     "reason=\"" + std::string(bpf::reason_name(r.reason)) + "\",direction=\"" +
                         std::string(bpf::dir_name(r.dir)) + "\"",
                     static_cast<double>(r.packets));
            head("skiff_datapath_bytes_total", "counter", "Bytes by verdict reason and direction.");
            for (const auto& r : *rows)
                if (verdict(r)) line("skiff_datapath_bytes_total",
                     "reason=\"" + std::string(bpf::reason_name(r.reason)) + "\",direction=\"" +
                         std::string(bpf::dir_name(r.dir)) + "\"",
                     static_cast<double>(r.bytes));
        }
    }
    return out;
}

HttpResponse Agent::handle_http(const std::string& path) {
    if (path == "/metrics") return {200, "text/plain; version=0.0.4", metrics_text()};
    if (path == "/healthz" || path == "/readyz") {
        std::lock_guard g(mu_);
        json j = {{"node", cfg_.node_name},
                  {"podCIDR", local_cidr_ ? local_cidr_->str() : ""},
                  {"sourceError", source_error_},
                  {"objectLimitError", limit_error_},
                  {"objects", source_objects_},
                  {"maxObjects", cfg_.max_objects},
                  {"reconcileError", sync_error_},
                  {"skipped", problems_},
                  {"reconciles", reconciles_ok_}};
        bool ok = sync_error_.empty() && source_error_.empty() && limit_error_.empty() && reconciles_ok_ > 0 &&
                  (path == "/healthz" || local_cidr_.has_value());
        return {ok ? 200 : 503, "application/json", j.dump() + "\n"};
    }
    return {404, "text/plain", "not found\n"};
}

}  // namespace skiff::agent
