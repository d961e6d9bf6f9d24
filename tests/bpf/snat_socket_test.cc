// Masquerade (SNAT) and the node's own sockets (bpf/lib/snat.h,
// snat_node_socket()): a pod keeps its own port only when, besides its
// reply tuple being free in skiff_snat, no socket of the node's would
// receive what comes back on that tuple: a TCP listener (on any address or
// on the node's), a TCP connection (here one left in SYN_SENT), a UDP
// socket bound to the port. Else, and for every candidate of the range
// too, the socket's port is skipped.
//
// The sockets (NodeSocket, snat_env.h) are made by this process inside its
// private netns, where the uplink holds the node's address, so the lookups
// of the programs run by BPF_PROG_TEST_RUN on its devices find them. Every
// case also runs without the socket (or with one that must not matter), so
// the tests fail if the lookup does nothing.
#include "snat_env.h"

namespace skiff::bpftest::snat {
namespace {

const Ipv4 kLoopback(0x7f000001);  // 127.0.0.1 (lo is down in the test netns: bound with IP_FREEBIND)

bool in_range(uint16_t port, uint16_t lo = kNatMin, uint16_t hi = kNatMax) { return port >= lo && port <= hi; }

class SnatSocketTest : public SnatTest {
protected:
    // A new flow of the node's (the first packet in) expected to leave the
    // uplink as sent, entered with its own port.
    void expect_node_keeps(const Bytes& in, uint16_t dport) {
        const uint8_t proto = in[kEthHlen + kIpProto];
        const Count before = counter(SKIFF_SNAT_NODE_NEW);
        RunResult r = run_to_uplink(in);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(hex(r.data), hex(in)) << "must leave as sent";
        EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, before.packets + 1);
        expect_flow(kNode, frame_sport(in), frame_daddr(in), dport, proto, frame_sport(in), 1, in.size());
    }
};

TEST_F(SnatSocketTest, TcpListenerOnAnyAddressTakesItsPortFromPods) {
    // No socket on 45001: kept.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45001, 80), kPodA), 45001);

    NodeSocket* listener = node_socket(NodeSocket::tcp_listener(Ipv4(), 45002));
    ASSERT_NE(listener, nullptr);
    // The listener answers whatever comes to 45002, from any destination.
    for (const auto& [dst, mac] : {std::pair{kOutside, kSnatOutsideMac}, std::pair{kOutside2, kSnatOutside2Mac}}) {
        SCOPED_TRACE(dst.str());
        const uint16_t nat = send_out(tcp_from(kPodA, dst, 45002, 80), kPodA, mac);
        EXPECT_TRUE(in_range(nat)) << nat;
        expect_flow(kPodA, 45002, dst, 80, kTcp, nat, 1, 54);
        EXPECT_FALSE(maps_.get(ingress_key(dst, 80, 45002, kTcp))) << "the listener's tuple is not entered";
    }
    // What arrives on 45002 stays the node's.
    expect_uplink_untouched(
        wire(kSnatOutsideMac, kOutside, kNode, kTcp, tcp_segment(kOutside, kNode, 80, 45002, 1, 0, kTcpSyn, {}, {})));
    // UDP from the same port is not the TCP listener's: kept.
    EXPECT_EQ(send_out(udp_from(kPodA, kOutside, 45002, 53), kPodA), 45002);

    // Without the listener the same tuple is free again.
    listener->close();
    EXPECT_EQ(send_out(tcp_from(kPodB, kOutside, 45002, 80), kPodB), 45002);
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 10u) << maps_.dump();
}

TEST_F(SnatSocketTest, TcpListenerOnTheNodeAddressTakesItsPortOneOnLoopbackDoesNot) {
    ASSERT_NE(node_socket(NodeSocket::tcp_listener(kNode, 45003)), nullptr);
    ASSERT_NE(node_socket(NodeSocket::tcp_listener(kLoopback, 45004)), nullptr);
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45003, 80), kPodA);
    EXPECT_TRUE(in_range(nat)) << nat;
    // Replies to the node's address never reach a loopback listener.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45004, 80), kPodA), 45004);
    expect_consistent_pairs();
}

TEST_F(SnatSocketTest, UdpSocketBoundToThePortTakesItFromPods) {
    // No socket on 45010: kept.
    EXPECT_EQ(send_out(udp_from(kPodA, kOutside, 45010, 53), kPodA), 45010);

    ASSERT_NE(node_socket(NodeSocket::udp_bound(Ipv4(), 45011)), nullptr);
    ASSERT_NE(node_socket(NodeSocket::udp_bound(kNode, 45012)), nullptr);
    for (uint16_t port : {uint16_t{45011}, uint16_t{45012}}) {
        SCOPED_TRACE("port " + std::to_string(port));
        Bytes out;
        const uint16_t nat = send_out(udp_from(kPodA, kOutside, port, 53), kPodA, kSnatOutsideMac, &out);
        EXPECT_TRUE(in_range(nat)) << nat;
        EXPECT_FALSE(maps_.get(ingress_key(kOutside, 53, port, kUdp)));
        // TCP from the same port: no TCP socket there, kept.
        EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, port, 53), kPodA), port);
    }
    // An echo identifier is not a port of the node's sockets: kept.
    EXPECT_EQ(send_out(ping_from(kPodA, kOutside, 45011), kPodA), 45011);
    // The socket's own datagrams keep their port at the uplink's egress.
    expect_node_keeps(node_udp(kOutside, 45011, 53), 53);
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 14u) << maps_.dump();
}

TEST_F(SnatSocketTest, TcpConnectionOfTheNodeTakesOnlyItsOwnTuple) {
    // The node connecting from 45020 to outside:80 (its SYN already sent,
    // its first packet maybe not seen by the uplink's egress yet).
    ASSERT_NE(node_socket(NodeSocket::tcp_connecting(kNode, 45020, kOutside, 80)), nullptr);
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45020, 80), kPodA);
    EXPECT_TRUE(in_range(nat)) << nat;
    EXPECT_FALSE(maps_.get(ingress_key(kOutside, 80, 45020, kTcp)));
    // Other tuples of the same port are free: another destination port,
    // another destination.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45020, 81), kPodA), 45020);
    EXPECT_EQ(send_out(tcp_from(kPodB, kOutside2, 45020, 80), kPodB, kSnatOutside2Mac), 45020);
    // The connection's own packets keep their port at the uplink's egress:
    // the node's own tuple is checked against the table only (the socket
    // found would be its own).
    expect_node_keeps(node_tcp(kOutside, 45020, 80), 80);
    expect_consistent_pairs();
}

TEST_F(SnatSocketTest, RangePortsOfNodeSocketsAreSkipped) {
    // Range 61000-61001, the node listening on TCP 61000 and bound to UDP
    // 61000. Pod A holds the own tuple of port 45000; pod B's flow and the
    // node's own flow from 45000 then both need a range port: the first of
    // them gets 61001, the second none. Ten rounds, in turn pod or node
    // first: whichever port the random start picks first, 61000 must be
    // skipped (a broken skip shows with probability 1 - 2^-10).
    ASSERT_OK(maps_.set_config(config(SKIFF_CFG_F_MASQUERADE, 61000, 61001)));
    ASSERT_NE(node_socket(NodeSocket::tcp_listener(Ipv4(), 61000)), nullptr);
    ASSERT_NE(node_socket(NodeSocket::udp_bound(Ipv4(), 61000)), nullptr);
    for (int round = 0; round < 10; ++round) {
        for (uint8_t proto : {kTcp, kUdp}) {
            const bool pod_first = round % 2 == 0;
            SCOPED_TRACE("round " + std::to_string(round) + " proto " + std::to_string(proto) +
                         (pod_first ? " pod first" : " node first"));
            for (const auto& [k, v] : maps_.all()) ASSERT_OK(maps_.del(k));
            const Bytes pod_a =
                proto == kTcp ? tcp_from(kPodA, kOutside, 45000, 80) : udp_from(kPodA, kOutside, 45000, 80);
            const Bytes pod_b =
                proto == kTcp ? tcp_from(kPodB, kOutside, 45000, 80) : udp_from(kPodB, kOutside, 45000, 80);
            const Bytes node = proto == kTcp ? node_tcp(kOutside, 45000, 80) : node_udp(kOutside, 45000, 80);
            ASSERT_EQ(send_out(pod_a, kPodA), 45000);
            RunResult r;
            if (pod_first) {
                EXPECT_EQ(send_out(pod_b, kPodB), 61001) << "61000 is a node socket's";
                r = run_to_uplink(node);
            } else {
                r = run_to_uplink(node);
                EXPECT_EQ(r.retval, kOk);
                EXPECT_EQ(r.data.size(), node.size());
                EXPECT_EQ(r.data.size() == node.size() ? frame_sport(r.data) : 0, 61001) << "61000 is a node socket's";
                r = run_pod(pod_b, kPodB);
            }
            ASSERT_EQ(r.err, 0);
            EXPECT_EQ(r.retval, kShot) << "61001 taken, 61000 a node socket's: no port left";
            EXPECT_EQ(maps_.all().size(), 4u) << maps_.dump();
        }
    }
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS).packets, 20u) << describe(counters());
}

}  // namespace
}  // namespace skiff::bpftest::snat
