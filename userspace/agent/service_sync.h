// Programming service frontends, backends and rev-NAT entries. The agent
// keeps a mirror of what it programmed (loaded from the maps at start), so
// a change costs work in proportion to the change, not to the number of
// services; a resync re-reads the maps to repair drift.
#pragma once

#include <map>
#include <memory>
#include <vector>
#include <string>

#include "datapath/map_layout.h"
#include "common/result.h"
#include "services.h"

namespace skiff::agent {

struct SvcKey {
    uint32_t vip_be = 0;
    uint16_t port_be = 0;
    uint8_t proto = 0;
    uint16_t slot = 0;
    auto operator<=>(const SvcKey&) const = default;
};

class ServiceTables {
public:
    virtual ~ServiceTables() = default;
    virtual Result<std::map<SvcKey, skiff_service_value>> services() = 0;
    virtual Result<std::map<uint32_t, skiff_l4_addr>> backends() = 0;
    virtual Result<std::map<uint16_t, skiff_l4_addr>> revnats() = 0;
    virtual Status put_service(const SvcKey& k, const skiff_service_value& v) = 0;
    virtual Status del_service(const SvcKey& k) = 0;
    virtual Status put_backend(uint32_t id, const skiff_l4_addr& b) = 0;
    virtual Status del_backend(uint32_t id) = 0;
    virtual Status put_revnat(uint16_t id, const skiff_l4_addr& v) = 0;
    virtual Status del_revnat(uint16_t id) = 0;
    // Maglev tables: {rev-NAT id, index} -> backend id.
    using MaglevKey = std::pair<uint16_t, uint32_t>;
    virtual Result<std::map<MaglevKey, uint32_t>> maglev() { return std::map<MaglevKey, uint32_t>{}; }
    virtual Status put_maglev(const MaglevKey&, uint32_t) { return Error{ENOTSUP, "no Maglev table"}; }
    virtual Status del_maglev(const MaglevKey&) { return Error{ENOTSUP, "no Maglev table"}; }
};

struct ServiceSyncStats {
    unsigned writes = 0, deletes = 0;
    size_t frontends = 0, backends = 0;
};

class ServiceSync {
public:
    explicit ServiceSync(ServiceTables& t) : t_(t) {}

    // Re-read the maps into the mirror (start, resync).
    Status load();
    // Make the maps match plan, writing only differences, in an order that
    // never exposes a half-programmed service: new backends, then slots,
    // then the frontend's count; shrinking removes slots after the count.
    // Frontends whose plan did not change since the last apply cost nothing,
    // so one change costs the same whatever the number of services.
    Result<ServiceSyncStats> apply(const ServicePlan& plan);
    // Only what changed (a ServicePlanner's delta), when the mirror is
    // known to match the last plan: after a load or a failed apply, the
    // whole plan has to go through apply() first (needs_full()).
    Result<ServiceSyncStats> apply_changes(const PlanDelta& delta);
    bool needs_full() const { return !loaded_ || full_pending_; }
    void forget() { loaded_ = false; }  // a delta was not applied: reload, then the whole plan

    // Backends currently programmed (for conntrack purging).
    const std::map<uint32_t, skiff_l4_addr>& backends() const { return backends_; }

private:
    Result<ServiceSyncStats> apply_incremental(const ServicePlan& plan);
    Result<uint32_t> backend_id(const L4Addr& a);
    Result<uint16_t> revnat_id(const L4Addr& fe);
    // Program one frontend (old: what was applied for it before, if any).
    Status apply_port(const ServicePort& sp, const ServicePort* old, ServiceSyncStats& st);
    Status remove_port(const ServicePort& old, ServiceSyncStats& st);
    Status put_entry(const SvcKey& k, const skiff_service_value& v, ServiceSyncStats& st);
    Status del_entry(const SvcKey& k, ServiceSyncStats& st);
    Status del_maglev_of(uint16_t rid, ServiceSyncStats& st);
    void unref(const ServicePort& old);
    // Full sweep after a load: whatever no applied frontend uses goes.
    Status sweep(ServiceSyncStats& st);
    Status upsert(const ServicePort& sp, ServiceSyncStats& st);
    Status remove(const L4Addr& fe, ServiceSyncStats& st);
    // Backends that lost their last frontend, once no slot names them.
    Status drop_unused(ServiceSyncStats& st);

    ServiceTables& t_;
    bool loaded_ = false;
    bool full_pending_ = true;  // loaded, but no whole plan applied since
    std::map<SvcKey, skiff_service_value> services_;
    std::map<uint32_t, skiff_l4_addr> backends_;
    std::map<uint16_t, skiff_l4_addr> revnats_;
    std::map<ServiceTables::MaglevKey, uint32_t> maglev_;
    std::map<L4Addr, uint32_t> backend_ids_;
    std::map<L4Addr, uint16_t> revnat_ids_;
    std::map<L4Addr, ServicePort> applied_;      // frontend -> last applied
    std::map<uint32_t, uint32_t> backend_refs_;  // backend id -> frontends using it
    std::vector<uint32_t> unref_candidates_;
    size_t id_writes_ = 0;  // backend/rev-NAT entries written since the last apply
    uint32_t next_backend_ = 1;
    uint16_t next_revnat_ = 1;
};

}  // namespace skiff::agent
