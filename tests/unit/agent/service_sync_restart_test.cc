// ServiceSync (userspace/agent/service_sync.cc) after a restart, when the
// tables fail, and applying deltas; the test bed is service_sync_fixture.h.
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "service_sync_fixture.h"

namespace skiff::agent {
namespace {

using namespace svcsync;

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
    t.svc[key(kWeb)] = fe_val(2, 9);
    t.svc[key(kWeb, 1)] = slot_val(700);
    t.svc[key(kWeb, 2)] = slot_val(42);

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
    t.svc[key(kWeb, 4)] = slot_val(id);
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
