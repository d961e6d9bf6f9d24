// The only translation unit that includes the generated skeletons.
#include "objects.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "from_pod.skel.h"
#include "from_uplink.skel.h"
#include "from_tunnel.skel.h"
#include "to_tunnel.skel.h"
#include "to_uplink.skel.h"
#include "sock.skel.h"

namespace skiff::datapath {
namespace {

// A map already pinned under the object's pin path must have the layout the
// object declares, or libbpf refuses to reuse it with a bare EINVAL. Say
// which map and what differs: pins left by a build with other map layouts.
Status check_pinned_maps(const bpf_object* obj, const std::string& pin_dir) {
    const bpf_map* m = nullptr;
    bpf_object__for_each_map(m, obj) {
        const char* path = bpf_map__pin_path(m);
        if (!path) continue;
        UniqueFd fd(bpf_obj_get(path));
        if (!fd.valid()) {
            if (errno == ENOENT) continue;
            return Error::errno_("open pinned map " + std::string(path));
        }
        bpf_map_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
            return Error::errno_("pinned map " + std::string(path) + ": info");
        std::string diff;
        auto cmp = [&diff](const char* what, uint32_t pinned, uint32_t want) {
            if (pinned != want)
                diff += std::string(diff.empty() ? "" : ", ") + what + " " + std::to_string(pinned) +
                        " (this build: " + std::to_string(want) + ")";
        };
        cmp("type", info.type, bpf_map__type(m));
        cmp("key size", info.key_size, bpf_map__key_size(m));
        cmp("value size", info.value_size, bpf_map__value_size(m));
        cmp("max entries", info.max_entries, bpf_map__max_entries(m));
        cmp("flags", info.map_flags, bpf_map__map_flags(m));
        if (!diff.empty())
            return Error::invalid("pinned map " + std::string(path) + " has another layout: " + diff +
                                  "; it was pinned by another skiff build: remove " + pin_dir +
                                  " while no pod is attached (or reboot) and load again");
    }
    return ok();
}

// Opens, loads and returns the program fd of skeleton Skel; libbpf pins and
// reuses maps by name under pin_dir.
template <typename Skel, typename Open, typename Load, typename Destroy, typename ProgOf>
Result<UniqueFd> load_skeleton(const std::string& pin_dir, std::string_view what, Open open, Load load, Destroy destroy,
                               ProgOf prog_of) {
    char errbuf[256];
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir.c_str());
    std::unique_ptr<Skel, Destroy> skel(open(&opts), destroy);
    if (!skel) return Error::errno_("open BPF object " + std::string(what));
    if (auto s = check_pinned_maps(skel->obj, pin_dir); !s) return s.error();
    if (int err = load(skel.get()); err) {
        libbpf_strerror(err, errbuf, sizeof(errbuf));
        return Error{-err, "load BPF object " + std::string(what) + " (pin dir " + pin_dir + "): " + errbuf};
    }
    int fd = ::dup(bpf_program__fd(prog_of(skel.get())));
    if (fd < 0) return Error::errno_("dup program fd");
    return UniqueFd(fd);
}

}  // namespace

std::string_view program_name(Program p) {
    switch (p) {
        case Program::FromPod: return "from_pod";
        case Program::FromUplink: return "from_uplink";
        case Program::ToUplink: return "to_uplink";
        case Program::FromTunnel: return "from_tunnel";
        case Program::ToTunnel: return "to_tunnel";
    }
    return "?";
}

ObjectBytes program_object(Program p) {
    ObjectBytes b;
    switch (p) {
        case Program::FromPod: b.data = from_pod__elf_bytes(&b.size); break;
        case Program::FromUplink: b.data = from_uplink__elf_bytes(&b.size); break;
        case Program::ToUplink: b.data = to_uplink__elf_bytes(&b.size); break;
        case Program::FromTunnel: b.data = from_tunnel__elf_bytes(&b.size); break;
        case Program::ToTunnel: b.data = to_tunnel__elf_bytes(&b.size); break;
    }
    return b;
}

std::vector<Program> all_programs() {
    return {Program::FromPod, Program::FromUplink, Program::ToUplink, Program::FromTunnel, Program::ToTunnel};
}

Result<UniqueFd> load_program(Program p, const std::string& pin_dir) {
    switch (p) {
        case Program::FromPod:
            return load_skeleton<from_pod>(pin_dir, "from_pod", from_pod__open_opts, from_pod__load, from_pod__destroy,
                                           [](from_pod* s) { return s->progs.skiff_from_pod; });
        case Program::FromUplink:
            return load_skeleton<from_uplink>(pin_dir, "from_uplink", from_uplink__open_opts, from_uplink__load,
                                              from_uplink__destroy,
                                              [](from_uplink* s) { return s->progs.skiff_uplink; });
        case Program::ToUplink:
            return load_skeleton<to_uplink>(pin_dir, "to_uplink", to_uplink__open_opts, to_uplink__load,
                                            to_uplink__destroy, [](to_uplink* s) { return s->progs.skiff_to_uplink; });
        case Program::FromTunnel:
            return load_skeleton<from_tunnel>(pin_dir, "from_tunnel", from_tunnel__open_opts, from_tunnel__load,
                                              from_tunnel__destroy,
                                              [](from_tunnel* s) { return s->progs.skiff_from_tunnel; });
        case Program::ToTunnel:
            return load_skeleton<to_tunnel>(pin_dir, "to_tunnel", to_tunnel__open_opts, to_tunnel__load,
                                            to_tunnel__destroy, [](to_tunnel* s) { return s->progs.skiff_to_tunnel; });
    }
    return Error::invalid("unknown program");
}

}  // namespace skiff::datapath

namespace skiff::datapath {

Result<SockPrograms> load_sock_programs(const std::string& pin_dir) {
    char errbuf[256];
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir.c_str());
    std::unique_ptr<sock, decltype(&sock__destroy)> skel(sock__open_opts(&opts), sock__destroy);
    if (!skel) return Error::errno_("open BPF object sock");
    if (auto s = check_pinned_maps(skel->obj, pin_dir); !s) return s.error();
    if (int err = sock__load(skel.get()); err) {
        libbpf_strerror(err, errbuf, sizeof(errbuf));
        return Error{-err, "load BPF object sock (pin dir " + pin_dir + "): " + errbuf};
    }
    SockPrograms p;
    p.connect4.reset(::dup(bpf_program__fd(skel->progs.skiff_connect4)));
    p.sendmsg4.reset(::dup(bpf_program__fd(skel->progs.skiff_sendmsg4)));
    p.recvmsg4.reset(::dup(bpf_program__fd(skel->progs.skiff_recvmsg4)));
    p.getpeername4.reset(::dup(bpf_program__fd(skel->progs.skiff_getpeer4)));
    if (!p.connect4.valid() || !p.sendmsg4.valid() || !p.recvmsg4.valid() || !p.getpeername4.valid())
        return Error::errno_("dup socket program fds");
    return p;
}

}  // namespace skiff::datapath
