/**
 * Safetensors dtypes, host tensors and the number-format conversions (bf16/f16 ↔ f32) the loaders need.
 *
 * @module
 */

/** A safetensors dtype this toolkit reads and writes. Sub-byte and 8-bit float formats are rejected. */
export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** The typed array holding a {@linkcode HostTensor}'s elements (F16/BF16 as raw bits, BOOL as bytes). */
export type HostData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | BigUint64Array
  | Uint32Array
  | Uint8Array;

/** A tensor in host memory: little-endian C-order elements in the typed array that fits its dtype. */
export interface HostTensor {
  /** Element type. */
  dtype: Dtype;
  /** Dimensions, outermost first; `[]` is a scalar. */
  shape: number[];
  /** Elements: Uint16Array bit patterns for F16/BF16, Uint8Array (0/1) for BOOL. */
  data: HostData;
}

interface DtypeSpec {
  size: number;
  array: {
    new (buffer: ArrayBufferLike, byteOffset: number, length: number): HostData;
    readonly name: string;
  };
  /** Position in the Rust `Dtype` enum; the writer orders tensors by it, descending. */
  rank: number;
}

const SPECS: Record<Dtype, DtypeSpec> = {
  BOOL: { size: 1, array: Uint8Array, rank: 0 },
  U8: { size: 1, array: Uint8Array, rank: 4 },
  I8: { size: 1, array: Int8Array, rank: 5 },
  I16: { size: 2, array: Int16Array, rank: 9 },
  U16: { size: 2, array: Uint16Array, rank: 10 },
  F16: { size: 2, array: Uint16Array, rank: 11 },
  BF16: { size: 2, array: Uint16Array, rank: 12 },
  I32: { size: 4, array: Int32Array, rank: 13 },
  U32: { size: 4, array: Uint32Array, rank: 14 },
  F32: { size: 4, array: Float32Array, rank: 15 },
  F64: { size: 8, array: Float64Array, rank: 17 },
  I64: { size: 8, array: BigInt64Array, rank: 18 },
  U64: { size: 8, array: BigUint64Array, rank: 19 },
};

/** All supported dtypes, in the Rust enum order. */
export const DTYPES: readonly Dtype[] = Object.keys(SPECS) as Dtype[];

/** True when `s` names a supported {@linkcode Dtype}. */
export function isDtype(s: unknown): s is Dtype {
  return typeof s === "string" && Object.hasOwn(SPECS, s);
}

/** Bytes per element of `dtype`. */
export function dtypeSize(dtype: Dtype): number {
  return SPECS[dtype].size;
}

/** Sort key of the safetensors writer: tensors go by descending rank, then by name. */
export function dtypeRank(dtype: Dtype): number {
  return SPECS[dtype].rank;
}

/** Name of the typed-array class that holds `dtype` (e.g. `"Uint16Array"` for BF16). */
export function dtypeArrayName(dtype: Dtype): string {
  return SPECS[dtype].array.name;
}

/** Whether `data` is the typed-array class that {@linkcode HostTensor} uses for `dtype`. */
export function dataFits(dtype: Dtype, data: HostData): boolean {
  return data instanceof SPECS[dtype].array;
}

/**
 * Number of elements of `shape`, or `null` when a dimension is not a non-negative safe integer or the
 * product (times `itemSize`) overflows the safe integer range.
 */
export function checkedNumel(shape: readonly unknown[], itemSize = 1): number | null {
  let n = itemSize;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) return null;
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n / itemSize;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses each `size`-byte word of `bytes` in place (used only on big-endian hosts). */
function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/**
 * Views little-endian `bytes` as the typed array of `dtype`. `bytes` must start at an offset that is a
 * multiple of the item size (a fresh buffer does); on a big-endian host the bytes are swapped in place.
 */
export function bytesToData(dtype: Dtype, bytes: Uint8Array): HostData {
  const { size, array } = SPECS[dtype];
  if (!LITTLE_ENDIAN && size > 1) swapBytes(bytes, size);
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  return new array(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

/** The little-endian bytes of `data` (a view, or a swapped copy on a big-endian host). */
export function dataToBytes(data: HostData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return bytes;
  const copy = bytes.slice();
  swapBytes(copy, data.BYTES_PER_ELEMENT);
  return copy;
}

/** Widens bfloat16 bit patterns to float32 (exact: a bf16 is the top half of an f32). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

let f16Table: Float32Array | null = null;

function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return t;
}

/** Widens IEEE half-precision bit patterns to float32 (exact, subnormals, ±Inf and NaN included). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const table = f16Table ??= buildF16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** Rounds float32 values to bfloat16 bit patterns, round-to-nearest-even; NaN stays a (quiet) NaN. */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x0040;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Converts any host tensor's elements to float32 (ints and f64 rounded to the nearest f32). */
export function dataToF32(dtype: Dtype, data: HostData): Float32Array {
  switch (dtype) {
    case "F32":
      return data as Float32Array;
    case "BF16":
      return bf16ToF32(data as Uint16Array);
    case "F16":
      return f16ToF32(data as Uint16Array);
    case "I64":
    case "U64": {
      const src = data as BigInt64Array | BigUint64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    default:
      return Float32Array.from(data as ArrayLike<number>);
  }
}
