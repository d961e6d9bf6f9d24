#include "files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

namespace skiff {

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::errno_("open " + path);
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::errno_("read " + path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max_bytes) return Error{EFBIG, path + ": larger than " + std::to_string(max_bytes) + " bytes"};
    }
    return out;
}

static Status write_all(int fd, const std::string& data, const std::string& path) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::errno_("write " + path);
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) return Error::errno_("fsync " + path);
    return ok();
}

namespace {

std::atomic<uint64_t> temp_seq{0};

std::string temp_name(const std::string& path) {
    return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(temp_seq++);
}

// data in a file of path's directory that has no name yet (O_TMPFILE),
// fsynced: a writer killed before it links the file anywhere leaves
// nothing behind. ENOTSUP where the file system cannot do that.
Result<UniqueFd> write_unnamed(const std::string& path, const std::string& data, unsigned mode = 0644) {
    auto slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) return Error{ENOTSUP, "no O_TMPFILE in " + dir};
        return Error::errno_("create a file in " + dir);
    }
    if (::fchmod(fd.get(), mode) != 0) return Error::errno_("chmod a file in " + dir);  // exactly, whatever the umask
    SKIFF_TRY(write_all(fd.get(), data, path));
    return fd;
}

// Give an unnamed file its name; EEXIST when the name is taken.
Status link_unnamed(int fd, const std::string& to) {
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) != 0)
        return Error::errno_("create " + to);
    return ok();
}

// The fallback: a named file beside path, unique per process and call.
Result<std::string> write_aside(const std::string& path, const std::string& data, unsigned mode = 0644) {
    std::string tmp = temp_name(path);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::errno_("create " + tmp);
    if (::fchmod(fd.get(), mode) != 0) {
        ::unlink(tmp.c_str());
        return Error::errno_("chmod " + tmp);
    }
    if (auto s = write_all(fd.get(), data, tmp); !s) {
        ::unlink(tmp.c_str());
        return s.error();
    }
    return tmp;
}

// A complete file named tmp beside path: unnamed until its last syscall.
Result<std::string> write_temp(const std::string& path, const std::string& data, unsigned mode) {
    auto fd = write_unnamed(path, data, mode);
    if (!fd) {
        if (fd.error().code == ENOTSUP) return write_aside(path, data, mode);
        return fd.error();
    }
    std::string tmp = temp_name(path);
    SKIFF_TRY(link_unnamed(fd->get(), tmp));
    return tmp;
}

// "<name>.tmp.<pid>.<n>": the writer's pid, or nullopt for other names.
std::optional<pid_t> temp_file_writer(const std::string& name) {
    auto at = name.rfind(".tmp.");
    if (at == std::string::npos) return std::nullopt;
    auto rest = name.substr(at + 5);
    auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == rest.size()) return std::nullopt;
    if (rest.find_first_not_of("0123456789") != dot ||
        rest.find_first_not_of("0123456789", dot + 1) != std::string::npos)
        return std::nullopt;
    if (dot > 9) return std::nullopt;
    return static_cast<pid_t>(std::stol(rest.substr(0, dot)));
}

}  // namespace

Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode) {
    // Named only between the link and the rename; remove_temp_files() takes
    // what a writer killed in between leaves.
    SKIFF_ASSIGN_OR_RETURN(std::string tmp, write_temp(path, data, mode));
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        Error e = Error::errno_("rename " + tmp + " -> " + path);
        ::unlink(tmp.c_str());
        return e;
    }
    return ok();
}

Status create_file_exclusive(const std::string& path, const std::string& data) {
    // Link the complete file into place: EEXIST if path exists, and readers
    // never see a half-written file, nor is anything left if we are killed.
    auto fd = write_unnamed(path, data);
    if (fd) return link_unnamed(fd->get(), path);
    if (fd.error().code != ENOTSUP) return fd.error();
    SKIFF_ASSIGN_OR_RETURN(std::string tmp, write_aside(path, data));
    int rc = ::link(tmp.c_str(), path.c_str());
    int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) return Error::os(err, "create " + path);
    return ok();
}

size_t remove_temp_files(const std::string& dir, TempFiles which) {
    auto names = list_dir(dir);
    if (!names) return 0;
    size_t removed = 0;
    for (const auto& n : *names) {
        auto pid = temp_file_writer(n);
        if (!pid) continue;
        // A writer that is gone: kill(pid, 0) fails with ESRCH.
        if (which == TempFiles::OfDeadWriters && !(::kill(*pid, 0) != 0 && errno == ESRCH)) continue;
        if (::unlink((dir + "/" + n).c_str()) == 0) ++removed;
    }
    return removed;
}

Status mkdir_p(const std::string& path, unsigned mode) {
    if (path.empty()) return Error::invalid("mkdir: empty path");
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (cur.empty()) continue;
        if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return Error::errno_("mkdir " + cur);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Error::errno_("stat " + path);
    if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, path + " is not a directory"};
    return ok();
}

Result<std::vector<std::string>> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        if (errno == ENOENT) return out;
        return Error::errno_("opendir " + dir);
    }
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN) out.push_back(std::move(n));
    }
    ::closedir(d);
    return out;
}

Status remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::errno_("unlink " + path);
    return ok();
}

bool path_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

Result<FileLock> FileLock::acquire(const std::string& path, std::chrono::milliseconds timeout) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::errno_("open lock " + path);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto backoff = std::chrono::microseconds(200);
    for (;;) {
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return FileLock(std::move(fd));
        if (errno != EWOULDBLOCK && errno != EINTR) return Error::errno_("flock " + path);
        if (std::chrono::steady_clock::now() >= deadline) return Error{EAGAIN, "timed out waiting for lock " + path};
        std::this_thread::sleep_for(backoff);
        if (backoff < std::chrono::milliseconds(10)) backoff *= 2;
    }
}

}  // namespace skiff
