// The test bed for ServiceSync (userspace/agent/service_sync.cc): in-memory
// service tables that record every call in order, plan builders, and a
// fixture that checks the tables hold exactly what a plan says.
#pragma once

#include "agent/service_sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace skiff::agent::svcsync {

inline Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
inline L4Addr tcp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_TCP}; }
inline L4Addr udp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_UDP}; }

inline SvcKey key(const L4Addr& fe, uint16_t slot = 0) { return SvcKey{fe.ip.be(), htons(fe.port), fe.proto, slot}; }

inline std::string str(const SvcKey& k) {
    return L4Addr{Ipv4::from_be(k.vip_be), ntohs(k.port_be), k.proto}.str() + "#" + std::to_string(k.slot);
}

inline skiff_l4_addr be_of(const L4Addr& a) { return skiff_l4_addr{a.ip.be(), htons(a.port), a.proto, 0}; }
inline skiff_l4_addr rn_of(const L4Addr& a) { return skiff_l4_addr{a.ip.be(), htons(a.port), a.proto, 0}; }
// A frontend entry (slot 0) and a slot entry, as the tables store them.
inline skiff_service_value fe_val(uint16_t count, uint16_t revnat_id) {
    skiff_service_value v{};
    v.count = count;
    v.revnat_id = revnat_id;
    return v;
}
inline skiff_service_value slot_val(uint32_t backend_id) {
    skiff_service_value v{};
    v.backend_id = backend_id;
    return v;
}
inline L4Addr addr_of(const skiff_l4_addr& b) { return L4Addr{Ipv4::from_be(b.ip), ntohs(b.port), b.proto}; }

// Operations are logged as "put_service 10.96.0.1:80/tcp#0", "del_backend 3", ...
class FakeServiceTables final : public ServiceTables {
public:
    std::map<SvcKey, skiff_service_value> svc;
    std::map<uint32_t, skiff_l4_addr> be;
    std::map<uint16_t, skiff_l4_addr> rn;
    std::vector<std::string> ops;  // writes and deletes, in order
    int reads = 0;
    bool fail_services = false, fail_backends = false, fail_revnats = false;
    bool fail_put_service = false, fail_del_service = false, fail_put_backend = false, fail_del_backend = false,
         fail_put_revnat = false, fail_del_revnat = false;

    Result<std::map<SvcKey, skiff_service_value>> services() override { return read(svc, fail_services, "services"); }
    Result<std::map<uint32_t, skiff_l4_addr>> backends() override { return read(be, fail_backends, "backends"); }
    Result<std::map<uint16_t, skiff_l4_addr>> revnats() override { return read(rn, fail_revnats, "revnat"); }
    Status put_service(const SvcKey& k, const skiff_service_value& v) override {
        return change(fail_put_service, ENOSPC, "put_service " + str(k), [&] { svc[k] = v; });
    }
    Status del_service(const SvcKey& k) override {
        return change(fail_del_service, EBUSY, "del_service " + str(k), [&] { svc.erase(k); });
    }
    Status put_backend(uint32_t id, const skiff_l4_addr& b) override {
        return change(fail_put_backend, ENOSPC, "put_backend " + std::to_string(id), [&] { be[id] = b; });
    }
    Status del_backend(uint32_t id) override {
        return change(fail_del_backend, EBUSY, "del_backend " + std::to_string(id), [&] { be.erase(id); });
    }
    Status put_revnat(uint16_t id, const skiff_l4_addr& v) override {
        return change(fail_put_revnat, ENOSPC, "put_revnat " + std::to_string(id), [&] { rn[id] = v; });
    }
    Status del_revnat(uint16_t id) override {
        return change(fail_del_revnat, EBUSY, "del_revnat " + std::to_string(id), [&] { rn.erase(id); });
    }

    std::vector<std::string> take_ops() { return std::exchange(ops, {}); }

    std::optional<uint32_t> backend_id_of(const L4Addr& a) const {
        for (const auto& [id, b] : be)
            if (addr_of(b) == a) return id;
        return std::nullopt;
    }
    std::optional<uint16_t> revnat_id_of(const L4Addr& a) const {
        for (const auto& [id, r] : rn)
            if (addr_of(r) == a) return id;
        return std::nullopt;
    }

private:
    // Every dump counts as a read; it fails with EPERM while `fail` is set.
    template <class Map>
    Result<Map> read(const Map& m, bool fail, const std::string& what) {
        ++reads;
        if (fail) return Error{EPERM, "fake: " + what + " dump failed"};
        return m;
    }
    // A write or delete: fails with `code` while `fail` is set, else is
    // logged as `op` and applied.
    Status change(bool fail, int code, std::string op, const std::function<void()>& apply) {
        if (fail) return Error{code, "fake: " + op + " failed"};
        ops.push_back(std::move(op));
        apply();
        return ok();
    }
};

inline ServicePort sp(const L4Addr& fe, std::vector<L4Addr> backends, std::vector<L4Addr> terminating = {}) {
    ServicePort p;
    p.name = "default/svc-" + fe.str();
    p.frontend = fe;
    p.backends = std::move(backends);
    p.terminating = std::move(terminating);
    return p;
}

inline ServicePlan plan_of(std::vector<ServicePort> ports) {
    ServicePlan p;
    p.ports = std::move(ports);
    std::sort(p.ports.begin(), p.ports.end(),
              [](const ServicePort& a, const ServicePort& b) { return a.frontend < b.frontend; });
    return p;
}

inline const L4Addr kWeb = tcp("10.96.0.1", 80);
inline const L4Addr kDns = udp("10.96.0.10", 53);
inline const L4Addr kW1 = tcp("10.244.1.1", 8080), kW2 = tcp("10.244.1.2", 8080), kW3 = tcp("10.244.1.3", 8080),
                    kW4 = tcp("10.244.1.4", 8080);
inline const L4Addr kD1 = udp("10.244.2.1", 5353);

inline size_t index_of(const std::vector<std::string>& ops, const std::string& op) {
    auto it = std::find(ops.begin(), ops.end(), op);
    EXPECT_NE(it, ops.end()) << "no operation '" << op << "'";
    return static_cast<size_t>(it - ops.begin());
}

inline std::string dump(const std::vector<std::string>& ops) {
    std::string s;
    for (const auto& o : ops) s += "\n  " + o;
    return s;
}

class ServiceSyncTest : public ::testing::Test {
protected:
    FakeServiceTables t;
    ServiceSync sync{t};

    ServiceSyncStats apply(ServiceSync& s, const ServicePlan& p) {
        auto r = s.apply(p);
        if (!r) {
            ADD_FAILURE() << "apply failed: " << r.error().message;
            return {};
        }
        return *r;
    }
    ServiceSyncStats apply(const ServicePlan& p) { return apply(sync, p); }

    // The tables hold exactly what `p` says: frontends with count and
    // revnat, slots naming the right backends in order, backends and
    // rev-NAT entries for exactly the plan's addresses.
    void expect_programmed(const ServicePlan& p, const ServiceSync* mirror = nullptr) {
        if (!mirror) mirror = &sync;
        std::map<SvcKey, skiff_service_value> want_svc;
        std::set<L4Addr> want_be, want_rn;
        for (const auto& s : p.ports) {
            auto rid = t.revnat_id_of(s.frontend);
            ASSERT_TRUE(rid) << "no revnat for " << s.frontend.str();
            EXPECT_NE(*rid, 0) << s.frontend.str();
            want_rn.insert(s.frontend);
            want_svc[key(s.frontend)] = fe_val(static_cast<uint16_t>(s.backends.size()), *rid);
            for (size_t i = 0; i < s.backends.size(); ++i) {
                auto bid = t.backend_id_of(s.backends[i]);
                ASSERT_TRUE(bid) << "no backend entry for " << s.backends[i].str();
                want_svc[key(s.frontend, static_cast<uint16_t>(i + 1))] = slot_val(*bid);
                want_be.insert(s.backends[i]);
            }
            for (const auto& b : s.terminating) want_be.insert(b);
        }
        std::set<SvcKey> got_keys, want_keys;
        for (const auto& [k, v] : t.svc) got_keys.insert(k);
        for (const auto& [k, v] : want_svc) want_keys.insert(k);
        EXPECT_EQ(got_keys, want_keys);
        for (const auto& [k, v] : want_svc) {
            auto it = t.svc.find(k);
            if (it == t.svc.end()) continue;
            EXPECT_EQ(it->second.backend_id, v.backend_id) << str(k);
            EXPECT_EQ(it->second.count, v.count) << str(k);
            EXPECT_EQ(it->second.revnat_id, v.revnat_id) << str(k);
            EXPECT_EQ(it->second.flags, 0u) << str(k);
        }
        std::set<L4Addr> got_be, got_rn;
        for (const auto& [id, b] : t.be) {
            EXPECT_NE(id, 0u);
            EXPECT_TRUE(got_be.insert(addr_of(b)).second) << "two ids for " << addr_of(b).str();
        }
        for (const auto& [id, r] : t.rn) EXPECT_TRUE(got_rn.insert(addr_of(r)).second) << addr_of(r).str();
        EXPECT_EQ(got_be, want_be);
        EXPECT_EQ(got_rn, want_rn);
        // The mirror agrees with the table.
        EXPECT_EQ(mirror->backends().size(), t.be.size());
    }
};

inline ServicePlan two_services() { return plan_of({sp(kWeb, {kW1, kW2, kW3}), sp(kDns, {kD1})}); }

}  // namespace skiff::agent::svcsync
