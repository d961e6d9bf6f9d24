// File-system helpers: atomic writes, exclusive creation, directory
// creation/listing and advisory locks with a deadline.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "fd.h"
#include "result.h"

namespace skiff {

Result<std::string> read_file(const std::string& path, size_t max_bytes = 1 << 20);

// Write to a temporary file in the same directory, fsync, rename over path.
// Until the rename, the file has no name at all where the file system
// allows (O_TMPFILE).
Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode = 0644);

// Create path with the given content only if it does not exist yet, so no
// reader ever sees a partial file. EEXIST is returned as an error code.
Status create_file_exclusive(const std::string& path, const std::string& data);

// Temporary files of write_file_atomic() ("<name>.tmp.<pid>.<n>") that a
// writer killed at the wrong moment left behind. All of them (the caller
// holds the lock every writer in dir holds), or those whose writer is gone.
enum class TempFiles { All, OfDeadWriters };
size_t remove_temp_files(const std::string& dir, TempFiles which);

Status mkdir_p(const std::string& path, unsigned mode = 0755);

// Regular file names in dir (not recursive); a missing dir is an empty list.
Result<std::vector<std::string>> list_dir(const std::string& dir);

Status remove_file(const std::string& path);  // missing is fine

bool path_exists(const std::string& path);

// An exclusive flock() on a lock file, released on destruction.
class FileLock {
public:
    static Result<FileLock> acquire(const std::string& path, std::chrono::milliseconds timeout);

    FileLock(FileLock&&) = default;
    FileLock& operator=(FileLock&&) = default;

private:
    explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace skiff
