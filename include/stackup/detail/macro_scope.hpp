// stackup — internal macros; every header that includes this includes
// macro_unscope.hpp at its end, so none of them leaks into user code.
// SPDX-License-Identifier: MIT
// (no include guard: each header defines the macros again for itself)

// Forces inlining where a measurement shows it pays: the steps of Stack<Cs...>'s
// quiet path, so an operation compiles to the checks and calls a person would write.
// Not without optimisation (-O0): there it buys no speed and costs compile time
// (a 64-component stack compiled about twice as long).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__OPTIMIZE__)
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
// Stack<Cs...>'s up() and down() inline their steps (the checks and calls a person
// would write) only when optimising: without optimisation that buys no speed, and
// the engine's walk through the per-type table, the same rules, compiles far faster.
// (Files of one program built at different levels hold two bodies of up()/down();
// the linker keeps one, and either does the same.)
#if defined(__OPTIMIZE__)
#define STACKUP_INLINE_STEPS 1
#else
#define STACKUP_INLINE_STEPS 0
#endif
