#!/usr/bin/env python3
"""Builds the tiny ONNX graphs that the benchmarks feed to onnxruntime-node.

  bench/models/gemm_nt.onnx       Y = A · Bᵀ              (Gemm, transB = 1)
  bench/models/gemm_nt_topk.onnx  (values, indices) = TopK(A · Bᵀ, k) along axis 1, largest, sorted

All dimensions are symbolic (M queries, N corpus rows, D features), so one file serves every
shape; k is a 1-element int64 input. The files are committed so the benchmarks never need Python.
Run from the repository root:  python3 scripts/bench-make-onnx.py
"""
import os

import onnx
from onnx import TensorProto, helper

OPSET = 13  # Gemm-13 and TopK-11 semantics; widely supported by onnxruntime releases
IR_VERSION = 7
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'bench', 'models')


def io(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='densevec-bench')
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name)
    onnx.save(model, path)
    print(f'{path}: {os.path.getsize(path)} bytes')


def main():
    os.makedirs(OUT, exist_ok=True)
    a = io('A', TensorProto.FLOAT, ['M', 'D'])
    b = io('B', TensorProto.FLOAT, ['N', 'D'])

    gemm = helper.make_node('Gemm', ['A', 'B'], ['Y'], transB=1, alpha=1.0, beta=1.0)
    save(helper.make_graph([gemm], 'gemm_nt', [a, b], [io('Y', TensorProto.FLOAT, ['M', 'N'])]), 'gemm_nt.onnx')

    k = io('K', TensorProto.INT64, [1])
    gemm2 = helper.make_node('Gemm', ['A', 'B'], ['S'], transB=1, alpha=1.0, beta=1.0)
    topk = helper.make_node('TopK', ['S', 'K'], ['values', 'indices'], axis=1, largest=1, sorted=1)
    save(
        helper.make_graph(
            [gemm2, topk],
            'gemm_nt_topk',
            [a, b, k],
            [io('values', TensorProto.FLOAT, ['M', 'k']), io('indices', TensorProto.INT64, ['M', 'k'])],
        ),
        'gemm_nt_topk.onnx',
    )


if __name__ == '__main__':
    main()
