// Programming service frontends, backend slots, backends and rev-NAT entries
// from a ServicePlan: ServiceSync (userspace/agent/service_sync.cc), against
// in-memory tables that record every call in order.
#include "agent/service_sync.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace skiff::agent {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
L4Addr tcp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_TCP}; }
L4Addr udp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_UDP}; }

SvcKey key(const L4Addr& fe, uint16_t slot = 0) { return SvcKey{fe.ip.be(), htons(fe.port), fe.proto, slot}; }

std::string str(const SvcKey& k) {
    return L4Addr{Ipv4::from_be(k.vip_be), ntohs(k.port_be), k.proto}.str() + "#" + std::to_string(k.slot);
}

skiff_backend be_of(const L4Addr& a) { return skiff_backend{a.ip.be(), htons(a.port), a.proto, 0}; }
skiff_revnat_value rn_of(const L4Addr& a) { return skiff_revnat_value{a.ip.be(), htons(a.port), a.proto, 0}; }
L4Addr addr_of(const skiff_backend& b) { return L4Addr{Ipv4::from_be(b.ip), ntohs(b.port), b.proto}; }
L4Addr addr_of(const skiff_revnat_value& r) { return L4Addr{Ipv4::from_be(r.vip), ntohs(r.port), r.proto}; }

// Operations are logged as "put_service 10.96.0.1:80/tcp#0", "del_backend 3", ...
class FakeServiceTables final : public ServiceTables {
public:
    std::map<SvcKey, skiff_service_value> svc;
    std::map<uint32_t, skiff_backend> be;
    std::map<uint16_t, skiff_revnat_value> rn;
    std::vector<std::string> ops;  // writes and deletes, in order
    int reads = 0;
    bool fail_services = false, fail_backends = false, fail_revnats = false;
    bool fail_put_service = false, fail_del_service = false, fail_put_backend = false, fail_del_backend = false,
         fail_put_revnat = false, fail_del_revnat = false;

    Result<std::map<SvcKey, skiff_service_value>> services() override {
        ++reads;
        if (fail_services) return Error{EPERM, "fake: services dump failed"};
        return svc;
    }
    Result<std::map<uint32_t, skiff_backend>> backends() override {
        ++reads;
        if (fail_backends) return Error{EPERM, "fake: backends dump failed"};
        return be;
    }
    Result<std::map<uint16_t, skiff_revnat_value>> revnats() override {
        ++reads;
        if (fail_revnats) return Error{EPERM, "fake: revnat dump failed"};
        return rn;
    }
    Status put_service(const SvcKey& k, const skiff_service_value& v) override {
        if (fail_put_service) return Error{ENOSPC, "fake: services full"};
        ops.push_back("put_service " + str(k));
        svc[k] = v;
        return ok();
    }
    Status del_service(const SvcKey& k) override {
        if (fail_del_service) return Error{EBUSY, "fake: services delete failed"};
        ops.push_back("del_service " + str(k));
        svc.erase(k);
        return ok();
    }
    Status put_backend(uint32_t id, const skiff_backend& b) override {
        if (fail_put_backend) return Error{ENOSPC, "fake: backends full"};
        ops.push_back("put_backend " + std::to_string(id));
        be[id] = b;
        return ok();
    }
    Status del_backend(uint32_t id) override {
        if (fail_del_backend) return Error{EBUSY, "fake: backend delete failed"};
        ops.push_back("del_backend " + std::to_string(id));
        be.erase(id);
        return ok();
    }
    Status put_revnat(uint16_t id, const skiff_revnat_value& v) override {
        if (fail_put_revnat) return Error{ENOSPC, "fake: revnat full"};
        ops.push_back("put_revnat " + std::to_string(id));
        rn[id] = v;
        return ok();
    }
    Status del_revnat(uint16_t id) override {
        if (fail_del_revnat) return Error{EBUSY, "fake: revnat delete failed"};
        ops.push_back("del_revnat " + std::to_string(id));
        rn.erase(id);
        return ok();
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
};

ServicePort sp(const L4Addr& fe, std::vector<L4Addr> backends, std::vector<L4Addr> terminating = {}) {
    ServicePort p;
    p.name = "default/svc-" + fe.str();
    p.frontend = fe;
    p.backends = std::move(backends);
    p.terminating = std::move(terminating);
    return p;
}

ServicePlan plan_of(std::vector<ServicePort> ports) {
    ServicePlan p;
    p.ports = std::move(ports);
    std::sort(p.ports.begin(), p.ports.end(),
              [](const ServicePort& a, const ServicePort& b) { return a.frontend < b.frontend; });
    return p;
}

const L4Addr kWeb = tcp("10.96.0.1", 80);
const L4Addr kDns = udp("10.96.0.10", 53);
const L4Addr kW1 = tcp("10.244.1.1", 8080), kW2 = tcp("10.244.1.2", 8080), kW3 = tcp("10.244.1.3", 8080),
             kW4 = tcp("10.244.1.4", 8080);
const L4Addr kD1 = udp("10.244.2.1", 5353);

size_t index_of(const std::vector<std::string>& ops, const std::string& op) {
    auto it = std::find(ops.begin(), ops.end(), op);
    EXPECT_NE(it, ops.end()) << "no operation '" << op << "'";
    return static_cast<size_t>(it - ops.begin());
}

std::string dump(const std::vector<std::string>& ops) {
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
            skiff_service_value fe{};
            fe.count = static_cast<uint16_t>(s.backends.size());
            fe.revnat_id = *rid;
            want_svc[key(s.frontend)] = fe;
            for (size_t i = 0; i < s.backends.size(); ++i) {
                auto bid = t.backend_id_of(s.backends[i]);
                ASSERT_TRUE(bid) << "no backend entry for " << s.backends[i].str();
                skiff_service_value v{};
                v.backend_id = *bid;
                want_svc[key(s.frontend, static_cast<uint16_t>(i + 1))] = v;
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

ServicePlan two_services() { return plan_of({sp(kWeb, {kW1, kW2, kW3}), sp(kDns, {kD1})}); }

// ---------------------------------------------------------------- from empty

TEST_F(ServiceSyncTest, FromEmptyProgramsEverything) {
    auto st = apply(two_services());
    expect_programmed(two_services());
    // 4 backends + 2 revnat + 4 slots + 2 frontends.
    EXPECT_EQ(st.writes, 12u);
    EXPECT_EQ(st.deletes, 0u);
    EXPECT_EQ(st.frontends, 2u);
    EXPECT_EQ(st.backends, 4u);
    EXPECT_EQ(t.ops.size(), 12u) << dump(t.ops);

    // Slots 1..n name the plan's backends in order.
    ASSERT_EQ(t.svc.count(key(kWeb)), 1u);
    EXPECT_EQ(t.svc[key(kWeb)].count, 3);
    for (uint16_t i = 1; i <= 3; ++i) {
        ASSERT_EQ(t.svc.count(key(kWeb, i)), 1u);
        EXPECT_EQ(addr_of(t.be.at(t.svc[key(kWeb, i)].backend_id)), (std::vector<L4Addr>{kW1, kW2, kW3})[i - 1]);
    }
    EXPECT_EQ(t.svc.count(key(kWeb, 4)), 0u);
    EXPECT_EQ(addr_of(t.rn.at(t.svc[key(kWeb)].revnat_id)), kWeb);
    EXPECT_EQ(addr_of(t.rn.at(t.svc[key(kDns)].revnat_id)), kDns);
    EXPECT_NE(t.svc[key(kWeb)].revnat_id, t.svc[key(kDns)].revnat_id);
    // The tables store network byte order.
    uint32_t id1 = t.svc[key(kWeb, 1)].backend_id;
    EXPECT_EQ(t.be.at(id1).ip, htonl(0x0af40101u));
    EXPECT_EQ(t.be.at(id1).port, htons(8080));
    EXPECT_EQ(t.be.at(id1).proto, IPPROTO_TCP);
}

TEST_F(ServiceSyncTest, FromEmptyOrderNeverExposesHalfProgrammedService) {
    apply(two_services());
    const auto& ops = t.ops;
    for (const auto& fe : {kWeb, kDns}) {
        size_t fe_at = index_of(ops, "put_service " + str(key(fe)));
        size_t rn_at = index_of(ops, "put_revnat " + std::to_string(t.svc[key(fe)].revnat_id));
        EXPECT_LT(rn_at, fe_at) << dump(ops);
        for (uint16_t i = 1; i <= t.svc[key(fe)].count; ++i) {
            size_t slot_at = index_of(ops, "put_service " + str(key(fe, i)));
            size_t be_at = index_of(ops, "put_backend " + std::to_string(t.svc[key(fe, i)].backend_id));
            EXPECT_LT(be_at, slot_at) << dump(ops);
            EXPECT_LT(slot_at, fe_at) << dump(ops);
        }
    }
}

TEST_F(ServiceSyncTest, FrontendWithoutBackendsHasCountZeroAndNoSlots) {
    auto st = apply(plan_of({sp(kWeb, {})}));
    EXPECT_EQ(st.writes, 2u);  // revnat + frontend
    ASSERT_EQ(t.svc.size(), 1u);
    EXPECT_EQ(t.svc[key(kWeb)].count, 0);
    EXPECT_NE(t.svc[key(kWeb)].revnat_id, 0);
    EXPECT_TRUE(t.be.empty());
    EXPECT_EQ(t.rn.size(), 1u);
}

TEST_F(ServiceSyncTest, LoadsTablesOnFirstApplyOnly) {
    apply(two_services());
    EXPECT_EQ(t.reads, 3);
    apply(two_services());
    EXPECT_EQ(t.reads, 3);
}

// ---------------------------------------------------------------- no-op and small changes

TEST_F(ServiceSyncTest, SamePlanAgainWritesNothing) {
    apply(two_services());
    t.take_ops();
    auto st = apply(two_services());
    EXPECT_EQ(st.writes, 0u);
    EXPECT_EQ(st.deletes, 0u);
    EXPECT_EQ(st.frontends, 2u);
    EXPECT_EQ(st.backends, 4u);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
}

TEST_F(ServiceSyncTest, AddingOneBackendWritesBackendSlotAndFrontend) {
    apply(two_services());
    auto before = t.svc;
    t.take_ops();
    auto p = plan_of({sp(kWeb, {kW1, kW2, kW3, kW4}), sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.writes, 3u);
    EXPECT_EQ(st.deletes, 0u);
    auto id = t.backend_id_of(kW4);
    ASSERT_TRUE(id);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"put_backend " + std::to_string(*id), "put_service " + str(key(kWeb, 4)),
                                               "put_service " + str(key(kWeb))}));
    EXPECT_EQ(t.svc[key(kWeb)].count, 4);
    EXPECT_EQ(t.svc[key(kWeb)].revnat_id, before[key(kWeb)].revnat_id);
    for (uint16_t i = 1; i <= 3; ++i) EXPECT_EQ(t.svc[key(kWeb, i)].backend_id, before[key(kWeb, i)].backend_id);
}

TEST_F(ServiceSyncTest, RemovingLastBackendWritesCountBeforeDeletingSlotThenBackend) {
    apply(two_services());
    uint32_t w3 = *t.backend_id_of(kW3);
    t.take_ops();
    auto p = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.writes, 1u);
    EXPECT_EQ(st.deletes, 2u);
    EXPECT_EQ(st.backends, 3u);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"put_service " + str(key(kWeb)), "del_service " + str(key(kWeb, 3)),
                                               "del_backend " + std::to_string(w3)}));
    EXPECT_EQ(t.svc[key(kWeb)].count, 2);
}

TEST_F(ServiceSyncTest, RemovingMiddleBackendShiftsSlotsThenShrinks) {
    apply(two_services());
    uint32_t w2 = *t.backend_id_of(kW2), w3 = *t.backend_id_of(kW3);
    t.take_ops();
    auto p = plan_of({sp(kWeb, {kW1, kW3}), sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.writes, 2u);   // slot 2 -> W3, frontend count
    EXPECT_EQ(st.deletes, 2u);  // slot 3, backend W2
    EXPECT_EQ(t.svc[key(kWeb, 2)].backend_id, w3);
    size_t slot2 = index_of(t.ops, "put_service " + str(key(kWeb, 2)));
    size_t fe = index_of(t.ops, "put_service " + str(key(kWeb)));
    size_t del3 = index_of(t.ops, "del_service " + str(key(kWeb, 3)));
    size_t delb = index_of(t.ops, "del_backend " + std::to_string(w2));
    EXPECT_LT(slot2, fe) << dump(t.ops);
    EXPECT_LT(fe, del3) << dump(t.ops);
    EXPECT_LT(del3, delb) << dump(t.ops);
}

TEST_F(ServiceSyncTest, ShrinkingToZeroKeepsFrontend) {
    apply(two_services());
    t.take_ops();
    auto p = plan_of({sp(kWeb, {}), sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.writes, 1u);
    EXPECT_EQ(st.deletes, 6u);  // 3 slots, 3 backends
    ASSERT_FALSE(t.ops.empty());
    EXPECT_EQ(t.ops[0], "put_service " + str(key(kWeb))) << dump(t.ops);
    EXPECT_EQ(t.svc[key(kWeb)].count, 0);
}

TEST_F(ServiceSyncTest, RemovingServiceDeletesFrontendFirstThenSlotsThenBackendsAndRevnat) {
    apply(two_services());
    uint16_t rid = t.svc[key(kWeb)].revnat_id;
    uint16_t dns_rid = t.svc[key(kDns)].revnat_id;
    std::vector<uint32_t> ids = {*t.backend_id_of(kW1), *t.backend_id_of(kW2), *t.backend_id_of(kW3)};
    t.take_ops();
    auto p = plan_of({sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.writes, 0u);
    EXPECT_EQ(st.deletes, 8u);  // frontend, 3 slots, 3 backends, revnat
    EXPECT_EQ(st.frontends, 1u);
    EXPECT_EQ(st.backends, 1u);
    ASSERT_EQ(t.ops.size(), 8u) << dump(t.ops);
    EXPECT_EQ(t.ops[0], "del_service " + str(key(kWeb))) << dump(t.ops);
    size_t rn_at = index_of(t.ops, "del_revnat " + std::to_string(rid));
    for (uint16_t i = 1; i <= 3; ++i) EXPECT_LT(0u, index_of(t.ops, "del_service " + str(key(kWeb, i))));
    for (uint32_t id : ids) {
        size_t at = index_of(t.ops, "del_backend " + std::to_string(id));
        for (uint16_t i = 1; i <= 3; ++i) EXPECT_LT(index_of(t.ops, "del_service " + str(key(kWeb, i))), at);
    }
    EXPECT_GT(rn_at, 0u);
    EXPECT_EQ(t.rn.count(rid), 0u);
    EXPECT_EQ(t.svc[key(kDns)].revnat_id, dns_rid);
}

TEST_F(ServiceSyncTest, EmptyPlanRemovesEverything) {
    apply(two_services());
    auto st = apply(ServicePlan{});
    EXPECT_TRUE(t.svc.empty());
    EXPECT_TRUE(t.be.empty());
    EXPECT_TRUE(t.rn.empty());
    EXPECT_EQ(st.deletes, 12u);
    EXPECT_EQ(st.frontends, 0u);
    EXPECT_EQ(st.backends, 0u);
    EXPECT_TRUE(sync.backends().empty());
}

// ---------------------------------------------------------------- terminating backends

TEST_F(ServiceSyncTest, TerminatingBackendsStayInBackendsTableButNotInSlots) {
    apply(two_services());
    uint32_t w3 = *t.backend_id_of(kW3);
    t.take_ops();
    // W3 starts terminating: no slot any more, but its entry stays for the
    // connections that still use it.
    auto p = plan_of({sp(kWeb, {kW1, kW2}, {kW3}), sp(kDns, {kD1})});
    auto st = apply(p);
    expect_programmed(p);
    EXPECT_EQ(st.deletes, 1u);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"put_service " + str(key(kWeb)), "del_service " + str(key(kWeb, 3))}));
    ASSERT_EQ(t.be.count(w3), 1u);
    EXPECT_EQ(addr_of(t.be[w3]), kW3);
    EXPECT_EQ(sync.backends().count(w3), 1u);
    for (const auto& [k, v] : t.svc) EXPECT_TRUE(k.slot == 0 || v.backend_id != w3) << str(k);

    // Still terminating: nothing to do.
    t.take_ops();
    st = apply(p);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);

    // Gone: now the entry is deleted.
    auto p2 = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
    st = apply(p2);
    expect_programmed(p2);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"del_backend " + std::to_string(w3)}));
    EXPECT_EQ(sync.backends().count(w3), 0u);
}

TEST_F(ServiceSyncTest, NewTerminatingOnlyBackendIsProgrammedWithoutSlot) {
    auto p = plan_of({sp(kWeb, {kW1}, {kW2})});
    apply(p);
    expect_programmed(p);
    EXPECT_EQ(t.be.size(), 2u);
    EXPECT_EQ(t.svc[key(kWeb)].count, 1);
    EXPECT_EQ(t.svc.count(key(kWeb, 2)), 0u);
}

TEST_F(ServiceSyncTest, TerminatingBackendBecomingReadyAgainKeepsItsId) {
    apply(plan_of({sp(kWeb, {kW1}, {kW2})}));
    uint32_t w2 = *t.backend_id_of(kW2);
    t.take_ops();
    auto p = plan_of({sp(kWeb, {kW1, kW2})});
    apply(p);
    expect_programmed(p);
    EXPECT_EQ(t.svc[key(kWeb, 2)].backend_id, w2);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"put_service " + str(key(kWeb, 2)), "put_service " + str(key(kWeb))}));
}

// ---------------------------------------------------------------- ids

TEST_F(ServiceSyncTest, IdsStableAcrossApplies) {
    apply(two_services());
    std::map<L4Addr, uint32_t> be_ids;
    for (const auto& a : {kW1, kW2, kW3, kD1}) be_ids[a] = *t.backend_id_of(a);
    uint16_t web_rid = *t.revnat_id_of(kWeb), dns_rid = *t.revnat_id_of(kDns);

    // Other services come and go; backends move around.
    const L4Addr other = tcp("10.96.0.2", 443);
    apply(plan_of({sp(kWeb, {kW2, kW3}), sp(kDns, {kD1}), sp(other, {tcp("10.244.9.9", 8443)})}));
    apply(plan_of({sp(kWeb, {kW2, kW3}), sp(kDns, {kD1})}));
    apply(plan_of({sp(kDns, {kD1}), sp(kWeb, {kW1, kW2, kW3})}));
    for (const auto& a : {kW2, kW3, kD1}) EXPECT_EQ(*t.backend_id_of(a), be_ids[a]) << a.str();
    EXPECT_EQ(*t.revnat_id_of(kWeb), web_rid);
    EXPECT_EQ(*t.revnat_id_of(kDns), dns_rid);
    expect_programmed(two_services());
}

TEST_F(ServiceSyncTest, SharedBackendHasOneIdAndSurvivesWhileUsed) {
    const L4Addr web2 = tcp("10.96.0.2", 80);
    apply(plan_of({sp(kWeb, {kW1, kW2}), sp(web2, {kW2})}));
    uint32_t w2 = *t.backend_id_of(kW2);
    EXPECT_EQ(t.be.size(), 2u);
    EXPECT_EQ(t.svc[key(kWeb, 2)].backend_id, w2);
    EXPECT_EQ(t.svc[key(web2, 1)].backend_id, w2);

    // Removing one user keeps it.
    t.take_ops();
    apply(plan_of({sp(web2, {kW2})}));
    EXPECT_EQ(t.be.count(w2), 1u);
    for (const auto& op : t.ops) EXPECT_NE(op, "del_backend " + std::to_string(w2));
}

TEST_F(ServiceSyncTest, NewIdsAvoidIdsFoundInTables) {
    // Entries left by a previous agent under ids 1 and 2 (still in use).
    t.be[1] = be_of(kW1);
    t.rn[1] = rn_of(kWeb);
    skiff_service_value fe{};
    fe.count = 1;
    fe.revnat_id = 1;
    t.svc[key(kWeb)] = fe;
    skiff_service_value s1{};
    s1.backend_id = 1;
    t.svc[key(kWeb, 1)] = s1;

    auto p = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
    apply(p);
    expect_programmed(p);
    EXPECT_EQ(*t.backend_id_of(kW1), 1u);
    EXPECT_EQ(*t.revnat_id_of(kWeb), 1);
    EXPECT_NE(*t.backend_id_of(kW2), 1u);
    EXPECT_NE(*t.revnat_id_of(kDns), 1);
}

// ---------------------------------------------------------------- restart

TEST_F(ServiceSyncTest, RestartWithProgrammedTablesWritesNothingAndReusesIds) {
    apply(two_services());
    auto svc_before = t.svc;
    auto be_before = t.be;
    auto rn_before = t.rn;
    t.take_ops();

    ServiceSync restarted(t);
    ASSERT_TRUE(restarted.load().ok());
    EXPECT_EQ(restarted.backends().size(), 4u);
    auto st = apply(restarted, two_services());
    EXPECT_EQ(st.writes, 0u);
    EXPECT_EQ(st.deletes, 0u);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
    EXPECT_EQ(t.be.size(), be_before.size());
    for (const auto& [id, b] : be_before) EXPECT_EQ(addr_of(t.be.at(id)), addr_of(b));
    for (const auto& [id, r] : rn_before) EXPECT_EQ(addr_of(t.rn.at(id)), addr_of(r));
    for (const auto& [k, v] : svc_before) {
        EXPECT_EQ(t.svc.at(k).backend_id, v.backend_id) << str(k);
        EXPECT_EQ(t.svc.at(k).count, v.count) << str(k);
        EXPECT_EQ(t.svc.at(k).revnat_id, v.revnat_id) << str(k);
    }
}

TEST_F(ServiceSyncTest, RestartWithForeignIdsReusesThem) {
    // Tables written by an older agent with ids this one would not pick.
    t.be[700] = be_of(kW1);
    t.be[42] = be_of(kW2);
    t.rn[9] = rn_of(kWeb);
    skiff_service_value fe{};
    fe.count = 2;
    fe.revnat_id = 9;
    t.svc[key(kWeb)] = fe;
    skiff_service_value s1{}, s2{};
    s1.backend_id = 700;
    s2.backend_id = 42;
    t.svc[key(kWeb, 1)] = s1;
    t.svc[key(kWeb, 2)] = s2;

    ASSERT_TRUE(sync.load().ok());
    auto p = plan_of({sp(kWeb, {kW1, kW2})});
    auto st = apply(p);
    EXPECT_EQ(st.writes, 0u);
    EXPECT_EQ(st.deletes, 0u);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
    EXPECT_EQ(sync.backends().count(700), 1u);
    EXPECT_EQ(sync.backends().count(42), 1u);

    // A change after the restart still uses them.
    auto p2 = plan_of({sp(kWeb, {kW2})});
    apply(p2);
    expect_programmed(p2);
    EXPECT_EQ(t.svc[key(kWeb, 1)].backend_id, 42u);
    EXPECT_EQ(t.svc[key(kWeb)].revnat_id, 9);
    EXPECT_EQ(t.be.count(700), 0u);
}

TEST_F(ServiceSyncTest, RestartAfterCrashMidShrinkCleansLeftovers) {
    // The previous agent wrote count 2 and died before deleting slot 3 and
    // W3; it also left a backend and a revnat entry nothing uses.
    apply(two_services());
    t.svc[key(kWeb)].count = 2;
    t.be[9999] = be_of(tcp("10.244.7.7", 80));
    t.rn[999] = rn_of(tcp("10.96.7.7", 80));
    uint32_t w3 = *t.backend_id_of(kW3);
    t.take_ops();

    ServiceSync restarted(t);
    auto p = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
    auto st = apply(restarted, p);
    expect_programmed(p, &restarted);
    EXPECT_EQ(st.writes, 0u);
    EXPECT_EQ(st.deletes, 4u);
    EXPECT_EQ(t.be.count(w3), 0u);
    EXPECT_EQ(t.be.count(9999), 0u);
    EXPECT_EQ(t.rn.count(999), 0u);
}

TEST_F(ServiceSyncTest, RestartAfterCrashMidGrowFinishes) {
    // Backend and slot 4 written, the count not yet.
    apply(two_services());
    uint32_t id = 4242;
    t.be[id] = be_of(kW4);
    skiff_service_value s4{};
    s4.backend_id = id;
    t.svc[key(kWeb, 4)] = s4;
    t.take_ops();

    ServiceSync restarted(t);
    auto p = plan_of({sp(kWeb, {kW1, kW2, kW3, kW4}), sp(kDns, {kD1})});
    auto st = apply(restarted, p);
    expect_programmed(p, &restarted);
    EXPECT_EQ(st.writes, 1u);
    EXPECT_EQ(t.ops, (std::vector<std::string>{"put_service " + str(key(kWeb))}));
    EXPECT_EQ(t.svc[key(kWeb, 4)].backend_id, id);
}

TEST_F(ServiceSyncTest, LoadRepairsDriftInTables) {
    apply(two_services());
    // Someone deleted a slot and rewrote a count behind the agent's back.
    t.svc.erase(key(kWeb, 2));
    t.svc[key(kDns)].count = 7;
    t.take_ops();
    // Without a load the mirror still believes all is well.
    apply(two_services());
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
    ASSERT_TRUE(sync.load().ok());
    auto st = apply(two_services());
    expect_programmed(two_services());
    EXPECT_EQ(st.writes, 2u);
}

// ---------------------------------------------------------------- errors

TEST_F(ServiceSyncTest, LoadErrorsPropagate) {
    for (bool FakeServiceTables::*flag :
         {&FakeServiceTables::fail_services, &FakeServiceTables::fail_backends, &FakeServiceTables::fail_revnats}) {
        FakeServiceTables tt;
        tt.*flag = true;
        ServiceSync s(tt);
        auto l = s.load();
        ASSERT_FALSE(l.ok());
        EXPECT_EQ(l.error().code, EPERM);
        auto r = s.apply(two_services());
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, EPERM);
        EXPECT_TRUE(tt.ops.empty()) << dump(tt.ops);
    }
}

TEST_F(ServiceSyncTest, WriteErrorsPropagate) {
    struct Case {
        bool FakeServiceTables::*flag;
        int code;
        bool on_growth;  // triggered by the second plan (growing) rather than the third (removing)
    };
    for (const Case& c : {Case{&FakeServiceTables::fail_put_backend, ENOSPC, true},
                          Case{&FakeServiceTables::fail_put_service, ENOSPC, true},
                          Case{&FakeServiceTables::fail_put_revnat, ENOSPC, true},
                          Case{&FakeServiceTables::fail_del_service, EBUSY, false},
                          Case{&FakeServiceTables::fail_del_backend, EBUSY, false},
                          Case{&FakeServiceTables::fail_del_revnat, EBUSY, false}}) {
        FakeServiceTables tt;
        ServiceSync s(tt);
        auto small = plan_of({sp(kWeb, {kW1})});
        auto big = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
        ASSERT_TRUE(s.apply(c.on_growth ? small : big).ok());
        tt.*(c.flag) = true;
        auto r = s.apply(c.on_growth ? big : small);
        ASSERT_FALSE(r.ok()) << "code " << c.code;
        EXPECT_EQ(r.error().code, c.code);
        EXPECT_FALSE(r.error().message.empty());
        // Once the table works again the next apply converges.
        tt.*(c.flag) = false;
        ASSERT_TRUE(s.apply(c.on_growth ? big : small).ok()) << "code " << c.code;
        auto again = s.apply(c.on_growth ? big : small);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(again->writes, 0u) << "code " << c.code;
        EXPECT_EQ(again->deletes, 0u) << "code " << c.code;
    }
}

TEST_F(ServiceSyncTest, FailedBackendWriteLeavesNoSlotPointingAtIt) {
    apply(plan_of({sp(kWeb, {kW1})}));
    t.take_ops();
    t.fail_put_backend = true;
    EXPECT_FALSE(sync.apply(plan_of({sp(kWeb, {kW1, kW2})})).ok());
    EXPECT_EQ(t.svc.count(key(kWeb, 2)), 0u);
    EXPECT_EQ(t.svc[key(kWeb)].count, 1);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);

    t.fail_put_backend = false;
    auto p = plan_of({sp(kWeb, {kW1, kW2})});
    apply(p);
    expect_programmed(p);
}

TEST_F(ServiceSyncTest, FailedSurplusSlotDeleteIsRetried) {
    apply(two_services());
    t.fail_del_service = true;
    auto p = plan_of({sp(kWeb, {kW1}), sp(kDns, {kD1})});
    EXPECT_FALSE(sync.apply(p).ok());
    // The count went down first, so the datapath never uses the stale slots.
    EXPECT_EQ(t.svc[key(kWeb)].count, 1);
    t.fail_del_service = false;
    apply(p);
    expect_programmed(p);
}

// ---------------------------------------------------------------- deltas

PlanDelta delta(std::vector<ServicePort> upserts, std::vector<L4Addr> removed = {}) {
    PlanDelta d;
    d.upserts = std::move(upserts);
    d.removed = std::move(removed);
    return d;
}

TEST_F(ServiceSyncTest, ChangesNeedAWholePlanFirst) {
    EXPECT_TRUE(sync.needs_full());
    auto r = sync.apply_changes(delta({sp(kWeb, {kW1})}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EAGAIN);
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
    apply(two_services());
    EXPECT_FALSE(sync.needs_full());
    ASSERT_TRUE(sync.load().ok());  // a resync: the mirror forgot what it applied
    EXPECT_TRUE(sync.needs_full());
}

TEST_F(ServiceSyncTest, ChangesWriteOnlyTheChangedFrontend) {
    apply(two_services());
    t.take_ops();
    // web loses kW2 and gains kW4; dns unchanged but listed: costs nothing.
    auto r = sync.apply_changes(delta({sp(kWeb, {kW1, kW3, kW4}), sp(kDns, {kD1})}));
    ASSERT_TRUE(r.ok()) << r.error().message;
    auto want = plan_of({sp(kWeb, {kW1, kW3, kW4}), sp(kDns, {kD1})});
    expect_programmed(want);
    for (const auto& op : t.ops) EXPECT_EQ(op.find(kDns.str()), std::string::npos) << dump(t.ops);
    EXPECT_EQ(r->frontends, 2u);
    // The same end state as applying the whole plan.
    FakeServiceTables t2;
    ServiceSync s2(t2);
    ASSERT_TRUE(s2.apply(want).ok());
    EXPECT_EQ(t2.svc.size(), t.svc.size());
    EXPECT_EQ(t2.be.size(), t.be.size());
}

TEST_F(ServiceSyncTest, ChangesRemoveFrontendsAndUnusedBackends) {
    apply(two_services());
    auto r = sync.apply_changes(delta({}, {kDns}));
    ASSERT_TRUE(r.ok()) << r.error().message;
    expect_programmed(plan_of({sp(kWeb, {kW1, kW2, kW3})}));
    EXPECT_FALSE(t.backend_id_of(kD1));
    EXPECT_EQ(r->frontends, 1u);
    // Removing what is not there is a no-op.
    t.take_ops();
    ASSERT_TRUE(sync.apply_changes(delta({}, {kDns})).ok());
    EXPECT_TRUE(t.ops.empty()) << dump(t.ops);
}

TEST_F(ServiceSyncTest, FailedChangesMakeTheNextApplyWhole) {
    apply(two_services());
    t.fail_put_backend = true;
    EXPECT_FALSE(sync.apply_changes(delta({sp(kWeb, {kW1, kW4})})).ok());
    EXPECT_TRUE(sync.needs_full());
    t.fail_put_backend = false;
    auto want = plan_of({sp(kWeb, {kW1, kW4}), sp(kDns, {kD1})});
    apply(want);
    expect_programmed(want);
    EXPECT_FALSE(sync.needs_full());
}

}  // namespace
}  // namespace skiff::agent
