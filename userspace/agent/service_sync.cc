#include "service_sync.h"

#include <arpa/inet.h>

#include <cstring>
#include <optional>
#include <set>

#include "datapath/maps.h"
#include "maglev.h"
#include "datapath/pins.h"

#include <bpf/bpf.h>

namespace skiff::agent {

namespace {

L4Addr addr_of(const skiff_l4_addr& b) { return {Ipv4::from_be(b.ip), ntohs(b.port), b.proto}; }

bool same(const skiff_service_value& a, const skiff_service_value& b) {
    return a.backend_id == b.backend_id && a.count == b.count && a.revnat_id == b.revnat_id && a.flags == b.flags &&
           a.affinity_timeout == b.affinity_timeout;
}

// The next id not in used, from cursor on (ids 1 to limit, wrapping), with
// at most tries candidates looked at; the cursor moves past it.
template <typename Id, typename Used>
std::optional<Id> next_free_id(Id& cursor, uint32_t limit, uint32_t tries, const Used& used) {
    for (uint32_t n = 0; n < tries; ++n) {
        const Id id = cursor;
        cursor = cursor == 0 || cursor >= limit ? Id{1} : static_cast<Id>(cursor + 1);
        if (id != 0 && !used.count(id)) return id;
    }
    return std::nullopt;
}

}  // namespace

Status ServiceSync::load() {
    SKIFF_ASSIGN_OR_RETURN(services_, t_.services());
    SKIFF_ASSIGN_OR_RETURN(backends_, t_.backends());
    SKIFF_ASSIGN_OR_RETURN(revnats_, t_.revnats());
    SKIFF_ASSIGN_OR_RETURN(maglev_, t_.maglev());
    backend_ids_.clear();
    revnat_ids_.clear();
    for (const auto& [id, b] : backends_) backend_ids_[addr_of(b)] = id;
    for (const auto& [id, r] : revnats_) revnat_ids_[addr_of(r)] = id;
    // What the maps hold is known, what it was meant for is not: the next
    // apply visits every frontend and sweeps the rest.
    applied_.clear();
    backend_refs_.clear();
    unref_candidates_.clear();
    loaded_ = true;
    full_pending_ = true;
    return ok();
}

Result<uint32_t> ServiceSync::backend_id(const L4Addr& a) {
    if (auto it = backend_ids_.find(a); it != backend_ids_.end()) return it->second;
    auto id = next_free_id(next_backend_, SKIFF_BACKENDS_MAX * 2u, SKIFF_BACKENDS_MAX, backends_);
    if (!id) return Error{ENOSPC, "no free backend id"};
    skiff_l4_addr b{a.ip.be(), htons(a.port), a.proto, 0};
    SKIFF_TRY(t_.put_backend(*id, b));
    ++id_writes_;
    backends_[*id] = b;
    backend_ids_[a] = *id;
    return *id;
}

Result<uint16_t> ServiceSync::revnat_id(const L4Addr& fe) {
    if (auto it = revnat_ids_.find(fe); it != revnat_ids_.end()) return it->second;
    auto id = next_free_id<uint16_t>(next_revnat_, 65535, 65535, revnats_);
    if (!id) return Error{ENOSPC, "no free rev-NAT id"};
    skiff_l4_addr v{fe.ip.be(), htons(fe.port), fe.proto, 0};
    SKIFF_TRY(t_.put_revnat(*id, v));
    ++id_writes_;
    revnats_[*id] = v;
    revnat_ids_[fe] = *id;
    return *id;
}

Status ServiceSync::put_entry(const SvcKey& k, const skiff_service_value& v, ServiceSyncStats& st) {
    if (auto it = services_.find(k); it != services_.end() && same(it->second, v)) return ok();
    SKIFF_TRY(t_.put_service(k, v));
    services_[k] = v;
    ++st.writes;
    return ok();
}

Status ServiceSync::del_entry(const SvcKey& k, ServiceSyncStats& st) {
    if (!services_.count(k)) return ok();
    SKIFF_TRY(t_.del_service(k));
    services_.erase(k);
    ++st.deletes;
    return ok();
}

Status ServiceSync::del_maglev_of(uint16_t rid, ServiceSyncStats& st) {
    auto it = maglev_.lower_bound({rid, 0});
    while (it != maglev_.end() && it->first.first == rid) {
        SKIFF_TRY(t_.del_maglev(it->first));
        it = maglev_.erase(it);
        ++st.deletes;
    }
    return ok();
}

void ServiceSync::unref(const ServicePort& old) {
    for (const auto* list : {&old.backends, &old.terminating})
        for (const auto& b : *list)
            if (auto id = backend_ids_.find(b); id != backend_ids_.end())
                if (auto r = backend_refs_.find(id->second); r != backend_refs_.end() && --r->second == 0)
                    unref_candidates_.push_back(id->second);
}

Status ServiceSync::apply_port(const ServicePort& sp, const ServicePort* old, ServiceSyncStats& st) {
    const SvcKey base{sp.frontend.ip.be(), htons(sp.frontend.port), sp.frontend.proto, 0};
    SKIFF_ASSIGN_OR_RETURN(uint16_t rid, revnat_id(sp.frontend));
    // 1. backends (ready and terminating) exist before any slot names them
    std::vector<uint32_t> ids;
    for (const auto& b : sp.backends) {
        SKIFF_ASSIGN_OR_RETURN(uint32_t id, backend_id(b));
        ids.push_back(id);
        ++backend_refs_[id];
    }
    for (const auto& b : sp.terminating) {
        SKIFF_ASSIGN_OR_RETURN(uint32_t id, backend_id(b));
        ++backend_refs_[id];
    }
    // 2. Maglev: the table before the flag that makes the datapath use it.
    const bool maglev = sp.maglev && !ids.empty();
    if (maglev) {
        std::vector<std::string> names;
        for (const auto& b : sp.backends) names.push_back(b.str());
        auto table = maglev_table(names, SKIFF_MAGLEV_SIZE);
        for (uint32_t idx = 0; idx < table.size(); ++idx) {
            const ServiceTables::MaglevKey k{rid, idx};
            const uint32_t want = ids[table[idx]];
            if (auto it = maglev_.find(k); it != maglev_.end() && it->second == want) continue;
            SKIFF_TRY(t_.put_maglev(k, want));
            maglev_[k] = want;
            ++st.writes;
        }
    }
    // 3. slots 1..n, 4. the frontend with its count, 5. surplus slots
    for (size_t i = 0; i < ids.size(); ++i) {
        SvcKey k = base;
        k.slot = static_cast<uint16_t>(i + 1);
        skiff_service_value v{};
        v.backend_id = ids[i];
        SKIFF_TRY(put_entry(k, v, st));
    }
    uint16_t old_count = 0;
    if (auto it = services_.find(base); it != services_.end()) old_count = it->second.count;
    skiff_service_value fe{};
    fe.count = static_cast<uint16_t>(ids.size());
    fe.revnat_id = rid;
    fe.flags = (sp.affinity ? SKIFF_SVC_F_AFFINITY : 0) | (maglev ? SKIFF_SVC_F_MAGLEV : 0);
    fe.affinity_timeout = sp.affinity ? sp.affinity_timeout : 0;
    SKIFF_TRY(put_entry(base, fe, st));
    for (uint32_t slot = static_cast<uint32_t>(ids.size()) + 1; slot <= old_count; ++slot) {
        SvcKey k = base;
        k.slot = static_cast<uint16_t>(slot);
        SKIFF_TRY(del_entry(k, st));
    }
    // 6. a table the flag no longer points at
    if (!maglev) SKIFF_TRY(del_maglev_of(rid, st));
    if (old) unref(*old);
    return ok();
}

Status ServiceSync::remove_port(const ServicePort& old, ServiceSyncStats& st) {
    // The frontend first (no new connections), then its slots and tables.
    SvcKey base{old.frontend.ip.be(), htons(old.frontend.port), old.frontend.proto, 0};
    uint16_t count = 0;
    if (auto it = services_.find(base); it != services_.end()) count = it->second.count;
    SKIFF_TRY(del_entry(base, st));
    for (uint32_t slot = 1; slot <= count; ++slot) {
        SvcKey k = base;
        k.slot = static_cast<uint16_t>(slot);
        SKIFF_TRY(del_entry(k, st));
    }
    if (auto r = revnat_ids_.find(old.frontend); r != revnat_ids_.end()) {
        SKIFF_TRY(del_maglev_of(r->second, st));
        SKIFF_TRY(t_.del_revnat(r->second));
        revnats_.erase(r->second);
        revnat_ids_.erase(r);
        ++st.deletes;
    }
    unref(old);
    return ok();
}

Status ServiceSync::sweep(ServiceSyncStats& st) {
    std::set<SvcKey> keep;
    std::set<uint16_t> rids;
    for (const auto& [fe, sp] : applied_) {
        SvcKey base{fe.ip.be(), htons(fe.port), fe.proto, 0};
        auto it = services_.find(base);
        uint16_t count = it == services_.end() ? 0 : it->second.count;
        for (uint32_t slot = 0; slot <= count; ++slot) {
            base.slot = static_cast<uint16_t>(slot);
            keep.insert(base);
        }
        if (auto r = revnat_ids_.find(fe); r != revnat_ids_.end()) rids.insert(r->second);
    }
    std::vector<SvcKey> gone_fe, gone_slots;
    for (const auto& [k, v] : services_)
        if (!keep.count(k)) (k.slot == 0 ? gone_fe : gone_slots).push_back(k);
    for (const auto& k : gone_fe) SKIFF_TRY(del_entry(k, st));
    for (const auto& k : gone_slots) SKIFF_TRY(del_entry(k, st));
    for (auto it = maglev_.begin(); it != maglev_.end();) {
        if (rids.count(it->first.first)) {
            ++it;
            continue;
        }
        SKIFF_TRY(t_.del_maglev(it->first));
        it = maglev_.erase(it);
        ++st.deletes;
    }
    for (auto it = revnats_.begin(); it != revnats_.end();) {
        if (rids.count(it->first)) {
            ++it;
            continue;
        }
        SKIFF_TRY(t_.del_revnat(it->first));
        revnat_ids_.erase(addr_of(it->second));
        it = revnats_.erase(it);
        ++st.deletes;
    }
    for (const auto& [id, b] : backends_)
        if (!backend_refs_.count(id) || backend_refs_[id] == 0) unref_candidates_.push_back(id);
    return ok();
}

Result<ServiceSyncStats> ServiceSync::apply(const ServicePlan& plan) {
    auto r = apply_incremental(plan);
    // After a failure part-way the mirror and the references may be off:
    // the next apply re-reads the maps and takes the full path.
    if (!r)
        loaded_ = false;
    else
        full_pending_ = false;
    return r;
}

Result<ServiceSyncStats> ServiceSync::apply_changes(const PlanDelta& delta) {
    if (needs_full()) return Error{EAGAIN, "service mirror not in step with a plan: apply the whole plan"};
    id_writes_ = 0;
    ServiceSyncStats st;
    Status s = ok();
    for (const auto& fe : delta.removed)
        if (s) s = remove(fe, st);
    for (const auto& sp : delta.upserts)
        if (s) s = upsert(sp, st);
    if (s) s = drop_unused(st);
    if (!s) {
        loaded_ = false;
        return s.error();
    }
    st.writes += static_cast<unsigned>(id_writes_);
    st.frontends = applied_.size();
    st.backends = backends_.size();
    return st;
}

Status ServiceSync::upsert(const ServicePort& sp, ServiceSyncStats& st) {
    auto it = applied_.find(sp.frontend);
    if (it != applied_.end() && it->second == sp) return ok();
    std::optional<ServicePort> old;
    if (it != applied_.end()) old = std::move(it->second);
    // Recorded before the writes: if they fail, the next apply sees a
    // difference (or a load) and tries again.
    applied_.erase(sp.frontend);
    SKIFF_TRY(apply_port(sp, old ? &*old : nullptr, st));
    applied_.emplace(sp.frontend, sp);
    return ok();
}

Status ServiceSync::remove(const L4Addr& fe, ServiceSyncStats& st) {
    auto node = applied_.extract(fe);
    if (node.empty()) return ok();
    return remove_port(node.mapped(), st);
}

Status ServiceSync::drop_unused(ServiceSyncStats& st) {
    for (uint32_t id : unref_candidates_) {
        auto r = backend_refs_.find(id);
        if (r != backend_refs_.end() && r->second > 0) continue;
        auto b = backends_.find(id);
        if (b == backends_.end()) continue;
        SKIFF_TRY(t_.del_backend(id));
        backend_ids_.erase(addr_of(b->second));
        backends_.erase(b);
        if (r != backend_refs_.end()) backend_refs_.erase(r);
        ++st.deletes;
    }
    unref_candidates_.clear();
    if (unref_candidates_.capacity() > 4096) unref_candidates_.shrink_to_fit();  // after a mass removal
    return ok();
}

Result<ServiceSyncStats> ServiceSync::apply_incremental(const ServicePlan& plan) {
    if (!loaded_) SKIFF_TRY(load());
    id_writes_ = 0;  // a failed apply's count must not leak into this one
    ServiceSyncStats st;
    const bool full = applied_.empty();

    // Changed and new frontends (unchanged ones cost a comparison).
    for (const auto& sp : plan.ports) SKIFF_TRY(upsert(sp, st));
    // Frontends that went away: both lists are sorted by frontend.
    std::vector<L4Addr> gone;
    auto p = plan.ports.begin();
    for (const auto& [fe, sp] : applied_) {
        while (p != plan.ports.end() && p->frontend < fe) ++p;
        if (p == plan.ports.end() || p->frontend != fe) gone.push_back(fe);
    }
    for (const auto& fe : gone) SKIFF_TRY(remove(fe, st));
    if (full) SKIFF_TRY(sweep(st));
    SKIFF_TRY(drop_unused(st));
    st.writes += static_cast<unsigned>(id_writes_);
    st.frontends = plan.ports.size();
    st.backends = backends_.size();
    return st;
}

}  // namespace skiff::agent
