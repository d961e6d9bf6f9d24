#include "netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

namespace skiff {

Result<NetNs> NetNs::open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::errno_("open netns " + path);
    // The kernel's word, not the path's: an nsfs file of another kind
    // (/proc/self/ns/mnt), /proc itself, a directory or a regular file all
    // open fine and are no network namespace.
    struct statfs sfs {};
    if (::fstatfs(fd.get(), &sfs) != 0) return Error::errno_("statfs " + path);
    if (sfs.f_type != NSFS_MAGIC || ::ioctl(fd.get(), NS_GET_NSTYPE) != CLONE_NEWNET)
        return Error::invalid(path + " is not a network namespace");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Error::errno_("stat " + path);
    return NetNs(std::move(fd), path, st.st_dev, st.st_ino);
}

Result<NetNs> NetNs::current() { return open("/proc/thread-self/ns/net"); }

bool NetNs::same_as(const NetNs& other) const { return dev_ == other.dev_ && ino_ == other.ino_; }

Status NetNs::enter() const {
    if (::setns(fd_.get(), CLONE_NEWNET) != 0) return Error::errno_("setns " + path_);
    return ok();
}

}  // namespace skiff
