#include "socklb.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/fd.h"
#include "objects.h"
#include "pins.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace skiff::datapath {

Result<uint64_t> current_netns_cookie() {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return Error::errno_("socket");
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (::getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
        return Error::errno_("getsockopt SO_NETNS_COOKIE");
    return cookie;
}

static Status attach_one(const std::string& pin_dir, int cgroup_fd, const char* hook, int prog_fd,
                         bpf_attach_type type) {
    std::string path = pin_dir + "/link_sock_" + hook;
    int existing = bpf_obj_get(path.c_str());
    if (existing >= 0) {
        UniqueFd link(existing);
        if (bpf_link_update(link.get(), prog_fd, nullptr) == 0) return ok();
        // A link that cannot take the program (its cgroup went away): replace it.
        ::unlink(path.c_str());
    }
    int lfd = bpf_link_create(prog_fd, cgroup_fd, type, nullptr);
    if (lfd < 0) return Error::errno_(std::string("attach ") + hook + " to the cgroup");
    UniqueFd link(lfd);
    if (bpf_obj_pin(link.get(), path.c_str()) != 0) return Error::errno_("pin " + path);
    return ok();
}

static bool is_cgroup2(int fd) {
    struct statfs sfs {};
    return ::fstatfs(fd, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

Result<UniqueFd> open_cgroup2(const std::string& path) {
    UniqueFd cg(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) return Error::errno_("open cgroup " + path);
    if (is_cgroup2(cg.get())) return cg;
    // A hybrid host's /sys/fs/cgroup is a tmpfs of v1 hierarchies with the
    // cgroup2 root at unified/ below it.
    UniqueFd unified(::openat(cg.get(), "unified", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (unified.valid() && is_cgroup2(unified.get())) return unified;
    return Error::invalid(path + " is not a cgroup2 directory, nor has one at " + path + "/unified");
}

Status attach_socket_lb(const std::string& pin_dir, const std::string& cgroup_path) {
    SKIFF_ASSIGN_OR_RETURN(UniqueFd cg, open_cgroup2(cgroup_path));
    SKIFF_TRY(ensure_pin_dir(pin_dir));
    SKIFF_ASSIGN_OR_RETURN(SockPrograms p, load_sock_programs(pin_dir));
    SKIFF_TRY(attach_one(pin_dir, cg.get(), "connect4", p.connect4.get(), BPF_CGROUP_INET4_CONNECT));
    SKIFF_TRY(attach_one(pin_dir, cg.get(), "sendmsg4", p.sendmsg4.get(), BPF_CGROUP_UDP4_SENDMSG));
    SKIFF_TRY(attach_one(pin_dir, cg.get(), "recvmsg4", p.recvmsg4.get(), BPF_CGROUP_UDP4_RECVMSG));
    SKIFF_TRY(attach_one(pin_dir, cg.get(), "getpeername4", p.getpeername4.get(), BPF_CGROUP_INET4_GETPEERNAME));
    return ok();
}

}  // namespace skiff::datapath
