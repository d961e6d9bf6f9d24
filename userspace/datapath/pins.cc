#include "pins.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cstring>

#include <thread>

#include "common/files.h"
#include "common/hash.h"

namespace skiff::datapath {

namespace {

constexpr const char* kBpffsHome = "/sys/fs/bpf";

bool is_bpffs(const std::string& path) {
    struct statfs sfs {};
    return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

bool below_bpffs_home(const std::string& path) {
    const std::string home = kBpffsHome;
    return path == home || path.rfind(home + "/", 0) == 0;
}

// Nothing mounted at path: it lives on its parent's file system.
bool nothing_mounted_at(const std::string& path) {
    struct stat self {
    }, parent{};
    return ::stat(path.c_str(), &self) == 0 && ::stat((path + "/..").c_str(), &parent) == 0 &&
           self.st_dev == parent.st_dev;
}

}  // namespace

std::string pin_dir_problem(const std::string& pin_dir) {
    if (pin_dir.empty() || pin_dir[0] != '/') return "pin path '" + pin_dir + "' is not absolute";
    // The deepest part of the path that exists decides where new directories
    // would land (stat follows links, so a link elsewhere is judged there).
    std::string existing = pin_dir;
    struct stat st {};
    while (::stat(existing.c_str(), &st) != 0) {
        if (errno != ENOENT)
            return "pin path " + pin_dir + ": cannot inspect " + existing + ": " + std::strerror(errno);
        auto slash = existing.find_last_of('/');
        existing = slash == 0 ? "/" : existing.substr(0, slash);
    }
    if (!S_ISDIR(st.st_mode)) return "pin path " + pin_dir + ": " + existing + " is not a directory";
    if (is_bpffs(existing)) return "";
    // The one mount skiff makes itself: bpffs at its home when nothing is there.
    if (below_bpffs_home(pin_dir) && !is_bpffs(kBpffsHome) && nothing_mounted_at(kBpffsHome)) return "";
    return "pin path " + pin_dir + " is not on a bpf file system (use a path below " + kBpffsHome +
           ", or mount bpffs there first)";
}

Status ensure_pin_dir(const std::string& pin_dir) {
    if (is_bpffs(pin_dir)) return ok();
    if (auto p = pin_dir_problem(pin_dir); !p.empty()) return Error::invalid(p);
    if (below_bpffs_home(pin_dir) && !is_bpffs(kBpffsHome) && nothing_mounted_at(kBpffsHome))
        if (::mount("bpf", kBpffsHome, "bpf", 0, "mode=0700") != 0 && !is_bpffs(kBpffsHome))
            return Error::errno_(std::string("mount bpffs at ") + kBpffsHome);
    SKIFF_TRY(mkdir_p(pin_dir, 0700));
    if (!is_bpffs(pin_dir)) return Error::invalid(pin_dir + " is not on a bpf file system");
    return ok();
}

Result<PinDirLock> PinDirLock::acquire(const std::string& pin_dir, std::chrono::milliseconds timeout) {
    UniqueFd fd(::open(pin_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return Error::errno_("open pin dir " + pin_dir);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return Error::errno_("lock " + pin_dir);
        if (std::chrono::steady_clock::now() >= deadline)
            return Error{EAGAIN, "timed out waiting for the lock on " + pin_dir};
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return PinDirLock(std::move(fd));
}

std::string program_pin_name(Program p) {
    ObjectBytes b = program_object(p);
    uint64_t h = fnv1a64(std::string_view(static_cast<const char*>(b.data), b.size));
    return "prog_" + std::string(program_name(p)) + "_" + hex_digits(h, 12);
}

static Result<UniqueFd> get_pinned(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return Error::errno_("open pinned object " + path);
    return UniqueFd(fd);
}

Result<UniqueFd> pinned_program(Program p, const std::string& pin_dir) {
    std::string path = pin_dir + "/" + program_pin_name(p);
    if (auto fd = get_pinned(path); fd.ok()) return fd;  // fast path: no lock

    SKIFF_TRY(ensure_pin_dir(pin_dir));
    SKIFF_ASSIGN_OR_RETURN(auto lock, PinDirLock::acquire(pin_dir, std::chrono::seconds(10)));
    if (auto fd = get_pinned(path); fd.ok()) return fd;  // somebody else loaded it
    SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, load_program(p, pin_dir));
    if (bpf_obj_pin(fd.get(), path.c_str()) != 0) return Error::errno_("pin program " + path);
    return fd;
}

Result<UniqueFd> open_pinned_map(const std::string& pin_dir, const std::string& name) {
    std::string path = pin_dir + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return Error{
                ENOENT, "no skiff map '" + name + "' pinned in " + pin_dir + " (is the datapath loaded on this node?)"};
        return Error::os(err, "open pinned map " + path);
    }
    return UniqueFd(fd);
}

}  // namespace skiff::datapath
