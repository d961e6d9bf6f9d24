// A node's pin directory on bpffs: mounting bpffs when needed, an exclusive
// lock for loaders, and loading programs once per object version (pinned
// under a name carrying a hash of the embedded object).
#pragma once

#include <chrono>
#include <string>

#include "common/fd.h"
#include "common/result.h"
#include "objects.h"

namespace skiff::bpf {

// The directory bpffs must be mounted on for pin_dir: /sys/fs/bpf for paths
// below it, else pin_dir's parent.
std::string bpffs_mount_point(const std::string& pin_dir);

// Mount bpffs at the mount point if something else (or nothing) is there,
// then create pin_dir.
Status ensure_pin_dir(const std::string& pin_dir);

// An exclusive lock on the pin directory itself (flock on the dir fd).
class PinDirLock {
public:
    static Result<PinDirLock> acquire(const std::string& pin_dir, std::chrono::milliseconds timeout);

private:
    explicit PinDirLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// "prog_from_pod_<12 hex digits of the object's hash>"
std::string program_pin_name(Program p);

// The pinned program for p, loading and pinning it (with its maps) first
// if this object version is not pinned yet. Safe against concurrent callers.
Result<UniqueFd> pinned_program(Program p, const std::string& pin_dir);

// Open a pinned map by name; ENOENT with a helpful message if absent.
Result<UniqueFd> open_pinned_map(const std::string& pin_dir, const std::string& name);

}  // namespace skiff::bpf
