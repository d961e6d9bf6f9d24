// The node datapath's pure decisions (userspace/agent/node_datapath.cc): the
// pods' MTU in each routing mode and the masquerade port check.
#include "agent/node_datapath.h"

#include <string>

#include <gtest/gtest.h>

namespace skiff::agent {
namespace {

TEST(NodeDatapathTest, PodMtuIsConfiguredOrTheUplinksLessTheOverhead) {
    AgentConfig c;
    EXPECT_EQ(pod_mtu(c, 1500), 1500u);
    EXPECT_EQ(pod_mtu(c, 9000), 9000u);
    c.routing_mode = RoutingMode::Vxlan;
    EXPECT_EQ(pod_mtu(c, 1500), 1450u);
    EXPECT_EQ(pod_mtu(c, 9000), 8950u);
    c.routing_mode = RoutingMode::VxlanCrossSubnet;
    EXPECT_EQ(pod_mtu(c, 1500), 1450u) << "some nodes are reached through the tunnel";
    EXPECT_EQ(pod_mtu(c, 100), 68u) << "never below IPv4's minimum";
    c.mtu = 1400;
    EXPECT_EQ(pod_mtu(c, 1500), 1400u);
}

TEST(NodeDatapathTest, MasqueradePortsMustAvoidTheEphemeralRange) {
    MasqueradeConfig mq;  // 61000-65535
    EXPECT_TRUE(check_masquerade_ports(mq, "32768\t60999\n").ok());
    auto s = check_masquerade_ports(mq, "32768\t61000\n");
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("ip_local_port_range"), std::string::npos);
    mq.enabled = false;
    EXPECT_TRUE(check_masquerade_ports(mq, "1024 65535").ok()) << "no masquerade, no ports taken";
}

}  // namespace
}  // namespace skiff::agent
