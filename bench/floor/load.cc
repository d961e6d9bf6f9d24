#include "load.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cstring>
#include <memory>

#include "veth_floor.skel.h"
#include "veth_floor_local.skel.h"

namespace skiff::floor {

Result<FloorProgs> load_floor(Ipv4 pod_ip, int pod_ifindex, const MacAddr& pod_mac, const MacAddr& host_mac) {
    std::unique_ptr<veth_floor, decltype(&veth_floor__destroy)> skel(veth_floor__open(), veth_floor__destroy);
    if (!skel) return Error::errno_("open veth_floor");
    // The const volatile knobs, written once before load (read-only after).
    skel->rodata->pod_ip = pod_ip.be();
    skel->rodata->pod_ifindex = static_cast<uint32_t>(pod_ifindex);
    std::memcpy(skel->rodata->pod_mac, pod_mac.data(), pod_mac.size());
    std::memcpy(skel->rodata->host_mac, host_mac.data(), host_mac.size());
    if (int err = veth_floor__load(skel.get()); err) return Error::os(-err, "load veth_floor");
    // The fds outlive the skeleton: each keeps its program loaded.
    FloorProgs p{UniqueFd(::fcntl(bpf_program__fd(skel->progs.floor_out), F_DUPFD_CLOEXEC, 0)),
                 UniqueFd(::fcntl(bpf_program__fd(skel->progs.floor_in), F_DUPFD_CLOEXEC, 0))};
    if (!p.out.valid() || !p.in.valid()) return Error::errno_("dup veth_floor program fds");
    return p;
}

Result<UniqueFd> load_floor_local(const std::vector<LocalPod>& pods) {
    std::unique_ptr<veth_floor_local, decltype(&veth_floor_local__destroy)> skel(veth_floor_local__open(),
                                                                                 veth_floor_local__destroy);
    if (!skel) return Error::errno_("open veth_floor_local");
    if (int err = veth_floor_local__load(skel.get()); err) return Error::os(-err, "load veth_floor_local");
    // Must match struct floor_ep in veth_floor_local.c.
    struct Ep {
        uint32_t ifindex;
        uint8_t pod_mac[6];
        uint8_t host_mac[6];
    };
    static_assert(sizeof(Ep) == 16);
    const int map = bpf_map__fd(skel->maps.floor_eps);
    for (const auto& p : pods) {
        Ep v{};
        v.ifindex = static_cast<uint32_t>(p.ifindex);
        std::memcpy(v.pod_mac, p.pod_mac.data(), 6);
        std::memcpy(v.host_mac, p.host_mac.data(), 6);
        const uint32_t key = p.ip.be();
        if (bpf_map_update_elem(map, &key, &v, BPF_ANY) != 0) return Error::errno_("floor_eps: " + p.ip.str());
    }
    // The program holds the map; the fd outlives the skeleton.
    UniqueFd fd(::fcntl(bpf_program__fd(skel->progs.floor_local), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return Error::errno_("dup floor_local program fd");
    return fd;
}

}  // namespace skiff::floor
