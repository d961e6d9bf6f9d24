// skiff-floor: attaches the benchmark's veth floor (bench/floor/veth_floor.c)
// in the current network namespace, for one node with one pod:
//
//   skiff-floor --pod-dev <host veth> --pod-ip <a.b.c.d> --pod-mac <mac> --uplink <dev>
//
// floor_out goes on the host veth's tc ingress, floor_in on the uplink's.
// Or the same-node floor (bench/floor/veth_floor_local.c) for pods of one
// node, floor_local on the tc ingress of each one's host veth:
//
//   skiff-floor --local-pod <host veth>,<a.b.c.d>,<pod mac> [--local-pod ...]
//
// The
// clsact filters hold the programs after this process exits; deleting the
// namespace (or the devices) removes them. Nothing is pinned. Exit 0 when both
// are attached; otherwise 1 with the reason on stderr and no filter of ours
// left (a device that had no clsact qdisc may keep an empty one). A device
// that already has an ingress filter is refused, never replaced.
#include <cstdio>
#include <string>
#include <vector>

#include "datapath/tc.h"
#include "common/ipv4.h"
#include "load.h"
#include "net/rtnetlink.h"

namespace {

using namespace skiff;

struct LocalArg {
    std::string dev;
    Ipv4 ip;
    MacAddr mac{};
};

struct Args {
    std::string pod_dev, uplink;
    Ipv4 pod_ip;
    MacAddr pod_mac{};
    std::vector<LocalArg> local;  // --local-pod: the same-node floor
};

// DEV,IP,MAC
Result<LocalArg> parse_local(const std::string& v) {
    const auto a = v.find(','), b = v.rfind(',');
    if (a == std::string::npos || a == b) return Error::invalid("--local-pod wants DEV,IP,MAC: " + v);
    LocalArg l;
    l.dev = v.substr(0, a);
    auto ip = Ipv4::parse(v.substr(a + 1, b - a - 1));
    if (!ip) return ip.error();
    l.ip = *ip;
    auto mac = parse_mac(v.substr(b + 1));
    if (!mac) return mac.error();
    l.mac = *mac;
    return l;
}

Result<Args> parse(int argc, char** argv) {
    Args a;
    bool ip = false, mac = false;
    for (int i = 1; i < argc; i += 2) {
        std::string k = argv[i];
        if (i + 1 >= argc) return Error::invalid(k + " needs a value");
        std::string v = argv[i + 1];
        if (k == "--local-pod") {
            auto r = parse_local(v);
            if (!r) return r.error();
            a.local.push_back(*r);
        } else if (k == "--pod-dev") {
            a.pod_dev = v;
        } else if (k == "--uplink") {
            a.uplink = v;
        } else if (k == "--pod-ip") {
            auto r = Ipv4::parse(v);
            if (!r) return r.error();
            a.pod_ip = *r;
            ip = true;
        } else if (k == "--pod-mac") {
            auto r = parse_mac(v);
            if (!r) return r.error();
            a.pod_mac = *r;
            mac = true;
        } else {
            return Error::invalid("unknown option " + k);
        }
    }
    if (!a.local.empty()) {
        if (!a.pod_dev.empty() || !a.uplink.empty() || ip || mac)
            return Error::invalid("--local-pod goes without --pod-dev, --pod-ip, --pod-mac and --uplink");
        return a;
    }
    if (a.pod_dev.empty() || a.uplink.empty() || !ip || !mac)
        return Error::invalid(
            "usage: skiff-floor --pod-dev DEV --pod-ip IP --pod-mac MAC --uplink DEV | --local-pod DEV,IP,MAC ...");
    return a;
}

Status attach(const Args& a) {
    auto nl = Netlink::open();
    if (!nl) return nl.error();
    auto pod = nl->link(a.pod_dev);
    if (!pod) return pod.error().wrap(a.pod_dev);
    auto up = nl->link(a.uplink);
    if (!up) return up.error().wrap(a.uplink);
    if (pod->ifindex == up->ifindex) return Error::invalid("--pod-dev and --uplink are the same device");
    // Never replace a filter someone else attached (skiff's, or an earlier
    // floor): a rollback would then remove theirs.
    for (const auto* dev : {&*pod, &*up}) {
        auto id = datapath::tc_attached_id(dev->ifindex, datapath::TcHook::Ingress);
        if (!id) return id.error();
        if (*id)
            return Error{EEXIST,
                         dev->name + " already has a tc ingress filter (program id " + std::to_string(*id) + ")"};
    }

    auto progs = floor::load_floor(a.pod_ip, pod->ifindex, a.pod_mac, pod->mac);
    if (!progs) return progs.error();
    if (auto s = datapath::tc_attach(pod->ifindex, datapath::TcHook::Ingress, progs->out.get()); !s) return s.error();
    if (auto s = datapath::tc_attach(up->ifindex, datapath::TcHook::Ingress, progs->in.get()); !s) {
        (void)datapath::tc_detach(pod->ifindex, datapath::TcHook::Ingress);
        return s.error();
    }
    return ok();
}

Status attach_local(const Args& a) {
    auto nl = Netlink::open();
    if (!nl) return nl.error();
    std::vector<floor::LocalPod> pods;
    for (const auto& l : a.local) {
        auto dev = nl->link(l.dev);
        if (!dev) return dev.error().wrap(l.dev);
        for (const auto& p : pods)
            if (p.ifindex == dev->ifindex) return Error::invalid(l.dev + " named twice");
        auto id = datapath::tc_attached_id(dev->ifindex, datapath::TcHook::Ingress);
        if (!id) return id.error();
        if (*id)
            return Error{EEXIST, l.dev + " already has a tc ingress filter (program id " + std::to_string(*id) + ")"};
        pods.push_back({l.ip, dev->ifindex, l.mac, dev->mac});
    }
    auto prog = floor::load_floor_local(pods);
    if (!prog) return prog.error();
    for (size_t i = 0; i < pods.size(); i++) {
        if (auto s = datapath::tc_attach(pods[i].ifindex, datapath::TcHook::Ingress, prog->get()); !s) {
            for (size_t j = 0; j < i; j++) (void)datapath::tc_detach(pods[j].ifindex, datapath::TcHook::Ingress);
            return s.error();
        }
    }
    return ok();
}

}  // namespace

int main(int argc, char** argv) {
    auto args = parse(argc, argv);
    if (!args) {
        std::fprintf(stderr, "skiff-floor: %s\n", args.error().message.c_str());
        return 1;
    }
    if (auto s = args->local.empty() ? attach(*args) : attach_local(*args); !s) {
        std::fprintf(stderr, "skiff-floor: %s\n", s.error().message.c_str());
        return 1;
    }
    return 0;
}
