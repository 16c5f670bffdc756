// stackup — internal macros; every header that includes this includes
// macro_unscope.hpp at its end, so none of them leaks into user code.
// SPDX-License-Identifier: MIT
// (no include guard: each header defines the macros again for itself)

// Forces inlining where a measurement shows it pays: the steps of Stack<Cs...>'s
// quiet path, so an operation compiles to the checks and calls a person would write.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_ALWAYS_INLINE [[gnu::always_inline]] inline
#else
#define STACKUP_ALWAYS_INLINE inline
#endif
// Marks what runs only when something fails, so it stays out of the inlined path.
#if defined(__GNUC__) || defined(__clang__)
#define STACKUP_COLD [[gnu::cold, gnu::noinline]]
#else
#define STACKUP_COLD
#endif
