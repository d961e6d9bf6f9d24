// Programming service frontends, backend slots, backends and rev-NAT entries
// from a ServicePlan: ServiceSync (userspace/agent/service_sync.cc), against
// in-memory tables that record every call in order (service_sync_fixture.h).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "service_sync_fixture.h"

namespace skiff::agent {
namespace {

using namespace svcsync;

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
    t.svc[key(kWeb)] = fe_val(1, 1);
    t.svc[key(kWeb, 1)] = slot_val(1);

    auto p = plan_of({sp(kWeb, {kW1, kW2}), sp(kDns, {kD1})});
    apply(p);
    expect_programmed(p);
    EXPECT_EQ(*t.backend_id_of(kW1), 1u);
    EXPECT_EQ(*t.revnat_id_of(kWeb), 1);
    EXPECT_NE(*t.backend_id_of(kW2), 1u);
    EXPECT_NE(*t.revnat_id_of(kDns), 1);
}

}  // namespace
}  // namespace skiff::agent
