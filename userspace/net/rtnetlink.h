// Route netlink through libnl-route-3, wrapped in RAII. One Netlink object
// is bound to the namespace it was opened in.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ipv4.h"
#include "common/result.h"
#include "netns.h"

struct nl_sock;

namespace skiff {

struct LinkInfo {
    int ifindex = 0;
    std::string name;
    std::string kind;   // "veth", "dummy", ... (empty if unknown)
    std::string alias;  // IFLA_IFALIAS
    MacAddr mac{};
    unsigned flags = 0;  // IFF_*
    unsigned mtu = 0;
};

struct RouteInfo {
    Ipv4Prefix dst;
    std::optional<Ipv4> gateway;
    int ifindex = 0;
    int scope = 0;
    int protocol = 0;  // RTPROT_*
};

// Routes skiff-agent owns carry this protocol number, so it finds exactly
// its own on restart (see /etc/iproute2/rt_protos: 0-4 and 8-19 are taken).
inline constexpr int kSkiffRouteProto = 178;

struct VethSpec {
    std::string host_name;
    std::string host_alias;  // recorded on the host end so GC can find it
    std::string peer_name;
    int peer_netns_fd = -1;
    unsigned mtu = 0;  // 0: kernel default
};

// A flow-based VXLAN device (external / collect_md): the tunnel key of
// each packet, set by a BPF program, says where it goes.
struct VxlanSpec {
    std::string name;
    uint16_t port = 8472;  // UDP destination port
    unsigned mtu = 0;      // 0: kernel default
    MacAddr mac{};
};

struct VxlanInfo {
    uint16_t port = 0;
    bool collect_metadata = false;
};

class Netlink {
public:
    static Result<Netlink> open();                    // in the current netns
    static Result<Netlink> open_in(const NetNs& ns);  // bound to ns

    Netlink(Netlink&&) noexcept;
    Netlink& operator=(Netlink&&) noexcept;
    ~Netlink();

    // ENODEV when the link does not exist.
    Result<LinkInfo> link(const std::string& name);
    Result<LinkInfo> link(int ifindex);
    Result<std::vector<LinkInfo>> links();

    Status create_veth(const VethSpec& spec);
    // Created down, without ARP (its neighbours are the tunnel's peers,
    // addressed by the tunnel key) and without learning.
    Status create_vxlan(const VxlanSpec& spec);
    Result<VxlanInfo> vxlan(int ifindex);  // EINVAL when not a VXLAN device
    Status set_mtu(int ifindex, unsigned mtu);
    // No IPv6 link-local address (nor any other) generated when it comes up.
    Status set_no_ipv6_addr_gen(int ifindex);
    Status set_up(int ifindex);  // one request each, no lookup; ENODEV when absent
    Status set_down(int ifindex);
    Status delete_link(const std::string& name);  // ENODEV when absent
    Status delete_link(int ifindex);              // ENODEV when absent

    Status add_address(int ifindex, const Ipv4Prefix& addr);
    Result<std::vector<Ipv4Prefix>> addresses(int ifindex);

    // A route in the main table. scope: RT_SCOPE_UNIVERSE or RT_SCOPE_LINK.
    Status add_route(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gateway, int scope);
    Status replace_route(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gateway, int scope,
                         int protocol = 4 /* RTPROT_STATIC */);
    // ESRCH when absent. protocol 0 matches any; libnl would default to STATIC.
    Status delete_route(const Ipv4Prefix& dst, int ifindex, int protocol = 0);
    Result<std::vector<RouteInfo>> routes();

    // A permanent neighbour entry (no ARP needed for ip on ifindex).
    Status add_neighbor(int ifindex, Ipv4 ip, const MacAddr& mac);

private:
    struct SockDeleter {
        void operator()(nl_sock* s) const;
    };
    explicit Netlink(nl_sock* s) : sk_(s) {}
    Status set_admin_state(int ifindex, bool up);
    Status route_op(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gw, int scope, int flags, int protocol);
    std::unique_ptr<nl_sock, SockDeleter> sk_;
};

// Write a sysctl under /proc/sys (of the calling thread's netns). Missing
// keys (e.g. IPv6 disabled) are reported as ENOENT.
Status write_sysctl(const std::string& key, const std::string& value);

}  // namespace skiff
