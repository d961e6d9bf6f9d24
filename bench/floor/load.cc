#include "load.h"

#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cstring>
#include <memory>

#include "veth_floor.skel.h"

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

}  // namespace skiff::floor
