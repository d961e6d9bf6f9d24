#include "rtnetlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet6.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"

namespace skiff {
namespace {

int nl_to_errno(int nlerr) {
    switch (-nlerr < 0 ? nlerr : -nlerr) {
        case NLE_EXIST: return EEXIST;
        case NLE_NODEV:
        case NLE_OBJ_NOTFOUND: return ENODEV;
        case NLE_PERM: return EPERM;
        case NLE_BUSY: return EBUSY;
        case NLE_INVAL: return EINVAL;
        case NLE_RANGE: return ERANGE;
        case NLE_NOMEM: return ENOMEM;
        case NLE_AGAIN: return EAGAIN;
        case NLE_NOADDR: return EADDRNOTAVAIL;
        default: return EIO;
    }
}

Error nl_error(int nlerr, const std::string& what) {
    return Error{nl_to_errno(nlerr), what + ": " + nl_geterror(nlerr)};
}

// RAII for libnl objects.
template <typename T, void (*Free)(T*)>
struct NlPtr {
    T* p = nullptr;
    NlPtr() = default;
    explicit NlPtr(T* x) : p(x) {}
    NlPtr(const NlPtr&) = delete;
    NlPtr& operator=(const NlPtr&) = delete;
    NlPtr(NlPtr&& o) noexcept : p(o.p) { o.p = nullptr; }
    ~NlPtr() {
        if (p) Free(p);
    }
    T* get() const { return p; }
    T** out() { return &p; }
};
using Link = NlPtr<rtnl_link, rtnl_link_put>;
using Addr = NlPtr<nl_addr, nl_addr_put>;
using Cache = NlPtr<nl_cache, nl_cache_free>;
using Route = NlPtr<rtnl_route, rtnl_route_put>;
using Neigh = NlPtr<rtnl_neigh, rtnl_neigh_put>;
using RtAddr = NlPtr<rtnl_addr, rtnl_addr_put>;

Addr make_addr(Ipv4 ip, int prefixlen) {
    uint32_t be = ip.be();
    Addr a(nl_addr_build(AF_INET, &be, sizeof(be)));
    if (a.get()) nl_addr_set_prefixlen(a.get(), prefixlen);
    return a;
}

LinkInfo to_info(rtnl_link* l) {
    LinkInfo li;
    li.ifindex = rtnl_link_get_ifindex(l);
    if (const char* n = rtnl_link_get_name(l)) li.name = n;
    if (const char* k = rtnl_link_get_type(l)) li.kind = k;
    if (const char* a = rtnl_link_get_ifalias(l)) li.alias = a;
    li.flags = rtnl_link_get_flags(l);
    li.mtu = rtnl_link_get_mtu(l);
    if (nl_addr* a = rtnl_link_get_addr(l); a && nl_addr_get_len(a) == 6)
        std::memcpy(li.mac.data(), nl_addr_get_binary_addr(a), 6);
    return li;
}

std::optional<Ipv4> addr_to_ipv4(nl_addr* a) {
    if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) return std::nullopt;
    uint32_t be;
    std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
    return Ipv4::from_be(be);
}

}  // namespace

void Netlink::SockDeleter::operator()(nl_sock* s) const { nl_socket_free(s); }

Netlink::Netlink(Netlink&&) noexcept = default;
Netlink& Netlink::operator=(Netlink&&) noexcept = default;
Netlink::~Netlink() = default;

Result<Netlink> Netlink::open() {
    nl_sock* s = nl_socket_alloc();
    if (!s) return Error{ENOMEM, "nl_socket_alloc"};
    Netlink nl(s);
    if (int err = nl_connect(s, NETLINK_ROUTE); err < 0) return nl_error(err, "netlink connect");
    // libnl's socket fds are not CLOEXEC: keep them out of exec'd plugins.
    ::fcntl(nl_socket_get_fd(s), F_SETFD, FD_CLOEXEC);
    return nl;
}

Result<Netlink> Netlink::open_in(const NetNs& ns) {
    // A netlink socket stays bound to the namespace it was created in.
    return in_netns(ns, [] { return Netlink::open(); });
}

Result<LinkInfo> Netlink::link(const std::string& name) {
    Link l;
    if (int err = rtnl_link_get_kernel(sk_.get(), 0, name.c_str(), l.out()); err < 0)
        return nl_error(err, "link " + name);
    return to_info(l.get());
}

Result<LinkInfo> Netlink::link(int ifindex) {
    Link l;
    if (int err = rtnl_link_get_kernel(sk_.get(), ifindex, nullptr, l.out()); err < 0)
        return nl_error(err, "link #" + std::to_string(ifindex));
    return to_info(l.get());
}

Result<std::vector<LinkInfo>> Netlink::links() {
    Cache c;
    if (int err = rtnl_link_alloc_cache(sk_.get(), AF_UNSPEC, c.out()); err < 0) return nl_error(err, "list links");
    std::vector<LinkInfo> out;
    for (nl_object* o = nl_cache_get_first(c.get()); o; o = nl_cache_get_next(o))
        out.push_back(to_info(reinterpret_cast<rtnl_link*>(o)));
    return out;
}

Status Netlink::create_veth(const VethSpec& spec) {
    Link host(rtnl_link_veth_alloc());
    if (!host.get()) return Error{ENOMEM, "rtnl_link_veth_alloc"};
    rtnl_link* peer = rtnl_link_veth_get_peer(host.get());  // owned by host
    rtnl_link_set_name(host.get(), spec.host_name.c_str());
    if (!spec.host_alias.empty()) rtnl_link_set_ifalias(host.get(), spec.host_alias.c_str());
    rtnl_link_set_name(peer, spec.peer_name.c_str());
    if (spec.mtu) {
        rtnl_link_set_mtu(host.get(), spec.mtu);
        rtnl_link_set_mtu(peer, spec.mtu);
    }
    if (spec.peer_netns_fd >= 0) rtnl_link_set_ns_fd(peer, spec.peer_netns_fd);
    int err = rtnl_link_add(sk_.get(), host.get(), NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(peer);  // rtnl_link_veth_get_peer took a reference
    if (err < 0) return nl_error(err, "create veth " + spec.host_name + "/" + spec.peer_name);
    return ok();
}

Status Netlink::create_vxlan(const VxlanSpec& spec) {
    Link l(rtnl_link_vxlan_alloc());
    if (!l.get()) return Error{ENOMEM, "rtnl_link_vxlan_alloc"};
    rtnl_link_set_name(l.get(), spec.name.c_str());
    if (spec.mtu) rtnl_link_set_mtu(l.get(), spec.mtu);
    std::unique_ptr<nl_addr, decltype(&nl_addr_put)> mac(nl_addr_build(AF_LLC, spec.mac.data(), spec.mac.size()),
                                                         nl_addr_put);
    if (!mac) return Error{ENOMEM, "nl_addr_build"};
    rtnl_link_set_addr(l.get(), mac.get());
    rtnl_link_set_flags(l.get(), IFF_NOARP);
    int err = rtnl_link_vxlan_set_collect_metadata(l.get(), 1);
    if (err >= 0) err = rtnl_link_vxlan_set_port(l.get(), spec.port);
    if (err >= 0) err = rtnl_link_vxlan_set_learning(l.get(), 0);
    if (err < 0) return nl_error(err, "vxlan attributes of " + spec.name);
    if (err = rtnl_link_add(sk_.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
        return nl_error(err, "create vxlan " + spec.name);
    return ok();
}

Result<VxlanInfo> Netlink::vxlan(int ifindex) {
    rtnl_link* raw = nullptr;
    if (int err = rtnl_link_get_kernel(sk_.get(), ifindex, nullptr, &raw); err < 0)
        return nl_error(err, "get link #" + std::to_string(ifindex));
    Link l(raw);
    if (!rtnl_link_is_vxlan(l.get())) return Error::invalid("link #" + std::to_string(ifindex) + " is not VXLAN");
    VxlanInfo info;
    uint32_t port = 0;
    if (rtnl_link_vxlan_get_port(l.get(), &port) >= 0) info.port = static_cast<uint16_t>(port);
    info.collect_metadata = rtnl_link_vxlan_get_collect_metadata(l.get()) > 0;
    return info;
}

Status Netlink::set_mtu(int ifindex, unsigned mtu) {
    Link orig(rtnl_link_alloc());
    rtnl_link_set_ifindex(orig.get(), ifindex);
    Link change(rtnl_link_alloc());
    rtnl_link_set_mtu(change.get(), mtu);
    if (int err = rtnl_link_change(sk_.get(), orig.get(), change.get(), 0); err < 0)
        return nl_error(err, "set mtu of link #" + std::to_string(ifindex));
    return ok();
}

Status Netlink::set_no_ipv6_addr_gen(int ifindex) {
    Link orig(rtnl_link_alloc());
    rtnl_link_set_ifindex(orig.get(), ifindex);
    Link change(rtnl_link_alloc());
    if (int err = rtnl_link_inet6_set_addr_gen_mode(change.get(), IN6_ADDR_GEN_MODE_NONE); err < 0)
        return nl_error(err, "addrgenmode of link #" + std::to_string(ifindex));
    if (int err = rtnl_link_change(sk_.get(), orig.get(), change.get(), 0); err < 0)
        return nl_error(err, "set addrgenmode none on link #" + std::to_string(ifindex));
    return ok();
}

Status Netlink::set_up(int ifindex) { return set_admin_state(ifindex, true); }
Status Netlink::set_down(int ifindex) { return set_admin_state(ifindex, false); }

Status Netlink::set_admin_state(int ifindex, bool up) {
    // rtnl_link_change() only needs the index from orig and changes only
    // the flags in the mask: no RTM_GETLINK first.
    Link orig(rtnl_link_alloc());
    rtnl_link_set_ifindex(orig.get(), ifindex);
    Link change(rtnl_link_alloc());
    if (up)
        rtnl_link_set_flags(change.get(), IFF_UP);
    else
        rtnl_link_unset_flags(change.get(), IFF_UP);
    if (int err = rtnl_link_change(sk_.get(), orig.get(), change.get(), 0); err < 0)
        return nl_error(err, "set link #" + std::to_string(ifindex) + (up ? " up" : " down"));
    return ok();
}

Status Netlink::delete_link(int ifindex) {
    Link l(rtnl_link_alloc());
    rtnl_link_set_ifindex(l.get(), ifindex);
    if (int err = rtnl_link_delete(sk_.get(), l.get()); err < 0)
        return nl_error(err, "delete link #" + std::to_string(ifindex));
    return ok();
}

Status Netlink::delete_link(const std::string& name) {
    Link l(rtnl_link_alloc());
    rtnl_link_set_name(l.get(), name.c_str());
    if (int err = rtnl_link_delete(sk_.get(), l.get()); err < 0) return nl_error(err, "delete link " + name);
    return ok();
}

Status Netlink::add_address(int ifindex, const Ipv4Prefix& p) {
    RtAddr a(rtnl_addr_alloc());
    Addr local = make_addr(p.addr(), p.len());
    rtnl_addr_set_ifindex(a.get(), ifindex);
    rtnl_addr_set_family(a.get(), AF_INET);
    rtnl_addr_set_local(a.get(), local.get());
    if (int err = rtnl_addr_add(sk_.get(), a.get(), 0); err < 0) return nl_error(err, "add address " + p.str());
    return ok();
}

Result<std::vector<Ipv4Prefix>> Netlink::addresses(int ifindex) {
    Cache c;
    if (int err = rtnl_addr_alloc_cache(sk_.get(), c.out()); err < 0) return nl_error(err, "list addresses");
    std::vector<Ipv4Prefix> out;
    for (nl_object* o = nl_cache_get_first(c.get()); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET) continue;
        if (auto ip = addr_to_ipv4(rtnl_addr_get_local(a))) out.emplace_back(*ip, rtnl_addr_get_prefixlen(a));
    }
    return out;
}

Status Netlink::route_op(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gw, int scope, int flags,
                         int protocol) {
    Route r(rtnl_route_alloc());
    Addr d = make_addr(dst.network(), dst.len());
    rtnl_route_set_family(r.get(), AF_INET);
    rtnl_route_set_dst(r.get(), d.get());
    rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
    rtnl_route_set_scope(r.get(), static_cast<uint8_t>(scope));
    rtnl_route_set_protocol(r.get(), static_cast<uint8_t>(protocol));
    rtnl_nexthop* nh = rtnl_route_nh_alloc();  // owned by the route once added
    rtnl_route_nh_set_ifindex(nh, ifindex);
    if (gw) {
        Addr g = make_addr(*gw, 32);
        rtnl_route_nh_set_gateway(nh, g.get());  // takes its own reference
    }
    rtnl_route_add_nexthop(r.get(), nh);
    if (int err = rtnl_route_add(sk_.get(), r.get(), flags); err < 0) return nl_error(err, "route " + dst.str());
    return ok();
}

Status Netlink::add_route(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gw, int scope) {
    return route_op(dst, ifindex, gw, scope, NLM_F_CREATE | NLM_F_EXCL, RTPROT_STATIC);
}

Status Netlink::replace_route(const Ipv4Prefix& dst, int ifindex, std::optional<Ipv4> gw, int scope, int protocol) {
    return route_op(dst, ifindex, gw, scope, NLM_F_CREATE | NLM_F_REPLACE, protocol);
}

Status Netlink::delete_route(const Ipv4Prefix& dst, int ifindex, int protocol) {
    Route r(rtnl_route_alloc());
    Addr d = make_addr(dst.network(), dst.len());
    rtnl_route_set_family(r.get(), AF_INET);
    rtnl_route_set_dst(r.get(), d.get());
    rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
    rtnl_route_set_scope(r.get(), RT_SCOPE_NOWHERE);  // match any scope
    rtnl_route_set_protocol(r.get(), static_cast<uint8_t>(protocol));
    if (ifindex > 0) {
        rtnl_nexthop* nh = rtnl_route_nh_alloc();
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_add_nexthop(r.get(), nh);
    }
    if (int err = rtnl_route_delete(sk_.get(), r.get(), 0); err < 0) {
        Error e = nl_error(err, "delete route " + dst.str());
        if (err == -NLE_OBJ_NOTFOUND) e.code = ESRCH;
        return e;
    }
    return ok();
}

Result<std::vector<RouteInfo>> Netlink::routes() {
    Cache c;
    if (int err = rtnl_route_alloc_cache(sk_.get(), AF_INET, 0, c.out()); err < 0) return nl_error(err, "list routes");
    std::vector<RouteInfo> out;
    for (nl_object* o = nl_cache_get_first(c.get()); o; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_route*>(o);
        if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
        RouteInfo ri;
        nl_addr* d = rtnl_route_get_dst(r);
        auto dip = addr_to_ipv4(d);
        ri.dst = Ipv4Prefix(dip.value_or(Ipv4()), d ? static_cast<int>(nl_addr_get_prefixlen(d)) : 0);
        ri.scope = rtnl_route_get_scope(r);
        ri.protocol = rtnl_route_get_protocol(r);
        if (rtnl_route_get_nnexthops(r) > 0) {
            rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
            ri.ifindex = rtnl_route_nh_get_ifindex(nh);
            ri.gateway = addr_to_ipv4(rtnl_route_nh_get_gateway(nh));
        }
        out.push_back(ri);
    }
    return out;
}

Status Netlink::add_neighbor(int ifindex, Ipv4 ip, const MacAddr& mac) {
    Neigh n(rtnl_neigh_alloc());
    Addr dst = make_addr(ip, 32);
    Addr ll(nl_addr_build(AF_LLC, mac.data(), mac.size()));
    rtnl_neigh_set_ifindex(n.get(), ifindex);
    rtnl_neigh_set_dst(n.get(), dst.get());
    rtnl_neigh_set_lladdr(n.get(), ll.get());
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    if (int err = rtnl_neigh_add(sk_.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
        return nl_error(err, "add neighbour " + ip.str());
    return ok();
}

Status write_sysctl(const std::string& key, const std::string& value) {
    std::string path = "/proc/sys/" + key;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::errno_("sysctl " + key);
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return Error::errno_("sysctl " + key + "=" + value);
    return ok();
}

}  // namespace skiff
