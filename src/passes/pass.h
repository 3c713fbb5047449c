// The compiler's graph passes. Each is match + rewrite over an ir::Graph, one per file
// (src/passes/<verb_noun>.cc); src/passes/pipeline.cc runs them in order.
//
// Every pass has the shape STYLE #5 asks for, `Status Pass(ir::Graph&, ...)`, with the
// `bool* changed` widened to an `int* rewrites` count (how many matches it rewrote; 0 is a
// non-match, never an error) so `clickrt build` can report what each pass did. A pass returns an
// error only when the graph it leaves would be wrong (an internal bug), never because a pattern
// did not match.
//
// Contract for all passes:
//  - Input: a verified graph whose dtypes and shapes have been inferred (ops::InferGraph), as
//    the ONNX importer leaves it. Output: the same, still verified and inferred.
//  - Outputs are numerically what the reference executor computed before, up to float
//    reassociation (the fused ops' reference kernels are defined by the subgraphs they replace;
//    see src/kernels/cpu/reference/reference_kernels.h).
//  - Graph inputs and outputs keep their names, dtypes and shapes (one exception:
//    specialize_shapes with a fixed batch gives their batch dim that size).
//  - Fusion passes rewrite the last node of a match into the fused op (which takes over its
//    output Value); intermediate nodes used only by the match are removed, ones also used
//    elsewhere are left for eliminate_dead_code.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace clickrt::passes {

// fuse_qdq: explicit quantization as ONNX Runtime's static quantization writes it (QDQ format)
// => clickrt's INT8 layers (docs/QUANTIZATION.md, "Explicit quantization (QDQ)"):
//   MatMul(DQ(Q(x, s, 0), s, 0), DQ(Wq, w_scale, 0))
//   Gemm(DQ(Q(x, s, 0), s, 0), DQ(Wq, w_scale, 0), C?)  transA=0, alpha=1, beta=1 (or no C)
//     => Linear(x, Wq [K,N] int8, bias [N]?, w_scale [N]), attrs activation 0, x_scale s
// Wq is an int8 constant (or Q of a constant: AddQDQPairToWeight) with zero point 0 and a scale
// per output channel (axis 1 of W [K,N]; axis 0 of Gemm transB=1's [N,K], whose codes are
// transposed) or per tensor; the codes and scales are kept bit for bit (no requantization). The
// activation pair is per tensor, int8, zero point 0, one scale s. C is a float constant or
// DQ(int32 constant) (ORT's quantized bias), which is evaluated. The Linear reads x itself when
// the pair's only readers are converted GEMMs (the pair is then removed), else the pair's output
// (q(DQ(Q(x))) = Q(x): the same codes), so other readers keep their exact inputs.
// Also, exact: Relu(DQ(Q(y))) with Q / DQ of one zero point and positive scales, y made by a
// MatMul / Gemm / Linear, becomes DQ(Q(Relu(y))), so fuse_linear can absorb the Relu.
// A QDQ GEMM that does not fit (uint8 or non-zero zero point, a weight scale along the wrong axis,
// no activation pair, ...) stays as it is: plain ops with the ONNX semantics, the layer in float
// (fold_constants folds its weight's DQ); a warning names the node and the reason. Q / DQ pairs
// elsewhere stay as ops (fake quantization, run by their reference kernels).
// The INT8 Linear computes the QDQ subgraph up to float reassociation, but for one difference:
// its activation codes clamp at -127 where ONNX's go to -128 (values below -127.5 s, outside the
// calibrated range). Runs first, before fold_constants, which would fold DQ(Wq) into a float
// constant and lose the codes. Counts GEMMs converted plus Relus moved.
Status FuseQdq(ir::Graph& g, int* rewrites);

// fold_constants: evaluates, with the reference kernels, every node whose inputs are all
// constants, and turns its outputs into constants (Constant nodes, Identity of initializers,
// Shape of a static shape and the Gather / Unsqueeze / Concat chains built from it, transposed
// weights). A node is left alone when a result would exceed `max_result_bytes`, when it depends
// on a graph input's values, or when evaluating it fails (the error then surfaces at run time).
// Re-infers shapes afterwards, since consumers may now see constant shape inputs.
inline constexpr int64_t kDefaultFoldMaxBytes = int64_t{64} << 20;
Status FoldConstants(ir::Graph& g, int* rewrites, int64_t max_result_bytes = kDefaultFoldMaxBytes);

// The batch sizes the engine is built for (`clickrt build --batch MIN:OPT:MAX`).
struct BatchProfile {
  int64_t min = 1;
  int64_t max = 0;  // 0: no upper bound
  bool fixed() const { return max > 0 && min == max; }
};

// specialize_shapes: specializes the shape arithmetic exporters emit, so matchers and inference
// see the same plain graph from either PyTorch exporter. Shape values (int64
// vectors built from Shape(x) by Gather, Slice, Concat, Unsqueeze, Squeeze, Cast, Identity,
// Reshape) are tracked element by element, each a known size, a named dim or unknown; then
//   - a shape value whose elements are all known becomes a constant (Gather(Shape(x), 1) for a
//     static dim 1; Concat of such with constants), and its producer goes;
//   - Expand(x, t) with each t_i 1 or x's dim (same size or same symbol) is removed, as is
//   - Reshape(x, t) with t x's own shape (each t_i x's dim i, 0 for "copy", or one -1);
//     consumers read x (a node whose output is a graph output stays);
//   - a computed Reshape target known but for one element becomes a constant with -1 there
//     (Reshape(s, Concat(batch, [50])) => Reshape(s, [-1, 50])), and a computed Expand target
//     whose unknown elements name x's own aligned dims becomes a constant with 1 there
//     (Expand(q [batch,1,D], Shape(k [batch,L,D])) => Expand(q, [1, L, D])), so inference knows
//     the output shapes;
//   - Shape(x, start, end) covering all of x drops start / end (PyTorch 2.x writes start=0);
//   - Expand(c, t) of a one-element constant c (PyTorch 2.x's zeros_like(x) = Expand(0,
//     Shape(x))) becomes ConstantOfShape(t) of value c, which inference shapes like x;
//   - with a fixed batch (batch.min == batch.max) first: the batch symbol (the one symbol at
//     dim 0 of the graph inputs; nothing happens when they name several) becomes that size in
//     every shape, graph inputs and outputs included, and shapes are re-inferred, so the
//     Shape / ConstantOfShape / Expand / Reshape chains on the batch become constants for
//     fold_constants to fold.
// Counts values given the fixed batch and nodes rewritten or removed. Re-infers shapes when it
// changed anything.
Status SpecializeShapes(ir::Graph& g, int* rewrites, const BatchProfile& batch);

// eliminate_dead_code: removes nodes none of whose outputs reach a graph output, then Values
// nothing uses (unused constants, dead outputs). Graph inputs stay even when unused: they are
// the model's interface. Counts removed nodes plus removed values.
Status EliminateDeadCode(ir::Graph& g, int* rewrites);

// fuse_embedding_lookup: Gather(table, idx, axis=0) with a constant 2-D float table and ids of
// rank >= 2 whose last dimension F is static, where idx is one of
//   ids
//   Add(ids, offsets)                                  offsets constant, per field
//   Where(valid, ids, zeros) [+ offsets]               the clamp PyTorch's FieldEmbedding exports
// with valid = And(Greater(ids, -1), Less(ids, sizes)) (either operand order; Not(Less(ids, 0))
// is accepted for ids >= 0), zeros = ConstantOfShape(Shape(ids)) with value 0 or an all-zero
// constant, and offsets / sizes constants that broadcast only along the last axis ([F], [1,F],
// or one value, which is expanded to [F]).
//   => EmbeddingLookup(table, ids, offsets?, sizes?)   (omitted offsets: an empty input slot)
// A Greater against anything but -1 is not the clamp and is not matched (the Where is then kept
// and the lookup reads its output as plain ids). 1-D ids (DIN's target item) are not matched:
// EmbeddingLookup's per-field tensors are indexed by the last axis.
Status FuseEmbeddingLookup(ir::Graph& g, int* rewrites);

// fuse_linear, one step per rewrite, in node order:
//   Gemm(x, B, C?)   transA=0, alpha=1, beta=1 (or no C), B constant 2-D  => Linear(x, W, bias?)
//                    (transB=1: W = B^T, a new constant [K,N])
//   MatMul(x, W)     W constant 2-D                                       => Linear(x, W)
//   Add(Linear(x, W), b)   no bias yet, b constant broadcasting along N only  => Linear(x, W, b)
//   Relu / Sigmoid(Linear(...))   activation none                         => activation 1 / 2
// Absorbing a following node needs the Linear's output to have that node as its only consumer
// and not to be a graph output. Hence the final Sigmoid fuses only where it literally follows a
// Linear (DCN-v2, DIN), not after DeepFM's Add of several logits.
Status FuseLinear(ir::Graph& g, int* rewrites);

// fuse_fm_interaction: DeepFM's factorization-machine term over e [B,F,D]:
//   s = ReduceSum(e, [1], keepdims=0); ss = ReduceSum(Mul(e, e), [1], keepdims=0)
//   r = ReduceSum(Sub(Mul(s, s), ss), [1], keepdims=1); Mul(r, 0.5) (either order)
//   => FMInteraction(e) [B,1]
// Axes and keepdims are checked exactly (negative axes accepted); every intermediate must be used
// only inside the pattern.
Status FuseFMInteraction(ir::Graph& g, int* rewrites);

// fuse_cross: DCN-v2's cross layer Add(Mul(x0, Linear(xl, W, b)), xl) (any operand order), the
// Linear with activation none, W constant [K,K], x0 / xl / the Linear's output of one shape
//   => Cross(x0, xl, W, b)   (no bias: a zero bias [K])
// Runs after fuse_linear, which turns the layer's Gemm into that Linear.
Status FuseCross(ir::Graph& g, int* rewrites);

// fuse_din_attention: DIN's target attention over a history k [B,L,D] for a query q [B,D]:
//   qe = Expand(Unsqueeze(q, 1), <k's shape>)         (any target: Concat makes it k's shape)
//   x  = Reshape(Concat(qe, k, Sub(qe, k), Mul(qe, k); axis -1), -> [rows, 4D])
//   x  = PRelu(Linear(x, W_i, b_i), slope_i)          for each hidden layer, any number of them
//   s  = Reshape(Linear(x, W_out, b_out) [rows,1], -> [B, L] with L = k's static dim 1)
//   w  = Where(mask, s, zeros)                        zeros: ConstantOfShape(Shape(s)) of 0, or a
//                                                     zero constant broadcasting into [B, L]
//   out = Squeeze(MatMul(Unsqueeze(w, 1), k), 1)  or  ReduceSum(Mul(Unsqueeze(w, -1), k), 1,
//                                                     keepdims 0)
//   => DinAttention(q, k, mask, W_1, b_1, slope_1, ..., W_out, b_out)  [B, D], attribute
//      pooling 0 (MatMul form) or 1 (Mul + ReduceSum form), so it sums as the subgraph did
// The Linears have activation none (a missing bias becomes a zero constant); slopes are
// constants broadcasting along the hidden axis only; D and L are static. Every intermediate must
// be used only inside the pattern. Runs after fuse_linear, which makes the Linears.
Status FuseDinAttention(ir::Graph& g, int* rewrites);

}  // namespace clickrt::passes
