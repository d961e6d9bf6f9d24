#include "tc.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

namespace skiff::datapath {
namespace {

constexpr uint32_t kHandle = 1;
constexpr uint32_t kPriority = 1;

bpf_tc_attach_point point(TcHook h) { return h == TcHook::Ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS; }

std::string where(int ifindex, TcHook h) {
    return std::string(h == TcHook::Ingress ? "tc ingress" : "tc egress") + " of ifindex " + std::to_string(ifindex);
}

}  // namespace

Status tc_attach(int ifindex, TcHook hook, int prog_fd) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = point(hook));
    if (int err = bpf_tc_hook_create(&h); err && err != -EEXIST)
        return Error::os(-err, "create clsact on ifindex " + std::to_string(ifindex));
    LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kHandle,
                .priority = kPriority);
    if (int err = bpf_tc_attach(&h, &o); err) return Error::os(-err, "attach to " + where(ifindex, hook));
    return ok();
}

Result<uint32_t> tc_attached_id(int ifindex, TcHook hook) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = point(hook));
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = kHandle, .priority = kPriority);
    int err = bpf_tc_query(&h, &o);
    if (err == -ENOENT || err == -EINVAL) return 0u;  // no clsact or no filter
    if (err) return Error::os(-err, "query " + where(ifindex, hook));
    return o.prog_id;
}

Status tc_detach(int ifindex, TcHook hook) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = point(hook));
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = kHandle, .priority = kPriority);
    if (int err = bpf_tc_detach(&h, &o); err) return Error::os(-err, "detach from " + where(ifindex, hook));
    return ok();
}

Result<uint32_t> prog_id_of(int prog_fd) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len); err) return Error::os(-err, "program info");
    return info.id;
}

}  // namespace skiff::datapath
