// stackup — StackLock: one transition of a stack at a time, across processes.
// SPDX-License-Identifier: MIT
#pragma once

#include <stackup/errors.hpp>
#include <stackup/options.hpp>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackup {

/// How a StackLock is held.
enum class LockMode {
  shared,    ///< many holders at once: what only reads the stack (status, logs)
  exclusive, ///< one holder, no shared ones: what acts on the stack (up, down)
};

/// An advisory lock (flock) on a stack's file, so that processes acting on the
/// same stack take turns: `cli::run` takes it exclusive for up and down and
/// shared for status and logs when `cli::Options::lock_file` names the file.
/// A host that acts on the stack itself takes it the same way:
///
///     stackup::StackLock lock("stackup.toml", stackup::LockMode::exclusive);
///     lock.lock();        // waits while another process holds it
///     stack.up();         // released when `lock` goes
///
/// The stack file is locked, not its directory: a LocalDirectory locks its
/// parent directory while it provisions or deprovisions, and flock does not nest
/// within one process (a second descriptor of the same directory would wait for
/// the first for ever), so a directory component beside the stack file would
/// hang. The file is opened read-only without following a symlink (name the
/// target) and must be a regular file. Movable, not copyable.
class StackLock {
public:
  /// Holds nothing.
  StackLock() noexcept = default;
  /// Opens `file` (a regular file, not through a symlink) to lock it in `mode`;
  /// takes nothing yet (`lock()`, `try_lock()`). Error naming the file and the
  /// fix when it cannot be opened or is not a regular file.
  StackLock(const std::filesystem::path& file, LockMode mode) : file_(file.string()), mode_(mode) {
    // O_NONBLOCK: a FIFO put in the file's place does not block the open.
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd_ < 0) {
      const int e = errno;
      throw Error("stackup: cannot lock the stack file " + file_ + ": " +
                  (e == ELOOP ? std::string("it is a symlink: name the file it points to")
                              : std::generic_category().message(e)));
    }
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      close();
      throw Error("stackup: cannot lock the stack file " + file_ +
                  ": it is not a regular file (a FIFO, a device, a directory?): name the stack file itself");
    }
  }
  StackLock(StackLock&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), held_(std::exchange(other.held_, false)), file_(std::move(other.file_)),
        mode_(other.mode_) {}
  StackLock& operator=(StackLock&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      held_ = std::exchange(other.held_, false);
      file_ = std::move(other.file_);
      mode_ = other.mode_;
    }
    return *this;
  }
  StackLock(const StackLock&) = delete;
  StackLock& operator=(const StackLock&) = delete;
  /// Releases the lock (closing the file does).
  ~StackLock() { close(); }

  /// Takes the lock if no other process's hold is in the way; true when held.
  bool try_lock() {
    require_file();
    if (held_) return true;
    while (::flock(fd_, operation() | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return false;
      fail(errno);
    }
    return held_ = true;
  }
  /// Takes the lock, waiting while another process holds it. With a stop token
  /// (`.stop` as for up and down), a stop requested while waiting ends the wait
  /// with InterruptedError, holding nothing; without one, the wait ends only
  /// when the lock is taken (a signal handled meanwhile does not end it).
  void lock(StopTokenRef stop = nullptr) {
    require_file();
    if (held_) return;
    if (!stop) {
      while (::flock(fd_, operation()) != 0)
        if (errno != EINTR) fail(errno);
      held_ = true;
      return;
    }
    // A blocking flock cannot be woken by a stop token: look again every 20 ms.
    while (!try_lock()) {
      if (stop.stop_requested())
        throw InterruptedError("stackup: stopped while waiting for the lock on " + file_ +
                               " (another command on this stack was running): nothing was done");
      const struct ::timespec pause {0, 20'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
  /// Releases the lock, keeping the file open to take it again.
  void unlock() noexcept {
    if (held_ && fd_ >= 0) ::flock(fd_, LOCK_UN);
    held_ = false;
  }

  /// The lock is held.
  [[nodiscard]] bool owns_lock() const noexcept { return held_; }
  /// The mode it is (or would be) held in.
  [[nodiscard]] LockMode mode() const noexcept { return mode_; }
  /// The locked file, as named.
  [[nodiscard]] const std::string& file() const noexcept { return file_; }

private:
  [[nodiscard]] int operation() const noexcept { return mode_ == LockMode::exclusive ? LOCK_EX : LOCK_SH; }
  void require_file() const {
    if (fd_ < 0) throw Error("stackup: this StackLock has no file (default-constructed or moved from): make one with a file");
  }
  [[noreturn]] void fail(int e) const {
    throw Error("stackup: cannot lock the stack file " + file_ + ": " + std::generic_category().message(e));
  }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    held_ = false;
  }

  int fd_ = -1;
  bool held_ = false;
  std::string file_;
  LockMode mode_ = LockMode::exclusive;
};

} // namespace stackup
