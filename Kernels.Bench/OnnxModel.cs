using System.Text;

namespace GpuActivations.Bench;

/// <summary>
/// Writes a one-node ONNX model as protobuf bytes, so ONNX Runtime can run a single op with no onnx package and no
/// model file. Only the handful of fields a one-node float graph needs are written; field numbers are those of
/// onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto),
/// and the wire format is protobuf's: a varint key (field number &lt;&lt; 3 | wire type) then a varint, a fixed 32-bit
/// value or a length-delimited payload.
/// </summary>
public static class OnnxModel
{
    /// <summary>A node attribute: a float, an int or a string (ONNX AttributeProto types FLOAT = 1, INT = 2, STRING = 3).</summary>
    /// <param name="Name">The attribute's name, e.g. "alpha".</param>
    /// <param name="Float">The float value, or null.</param>
    /// <param name="Int">The integer value, or null.</param>
    /// <param name="Text">The string value, or null.</param>
    public sealed record Attribute(string Name, float? Float = null, long? Int = null, string? Text = null)
    {
        /// <summary>A float attribute.</summary>
        public static Attribute Of(string name, float value) => new(name, Float: value);
        /// <summary>An integer attribute.</summary>
        public static Attribute Of(string name, long value) => new(name, Int: value);
        /// <summary>A string attribute.</summary>
        public static Attribute Of(string name, string value) => new(name, Text: value);
    }

    /// <summary>
    /// IR version 9 (ONNX 1.14): the lowest that admits opset 20, which the exact and tanh GELU need; ONNX Runtime 1.32
    /// reads up to IR 11.
    /// </summary>
    public const long IrVersion = 9;

    /// <summary>The default-domain opset the models import: 20 (Gelu with its "approximate" attribute first appears there).</summary>
    public const long Opset = 20;

    /// <summary>
    /// The model bytes of one node <paramref name="opType"/> reading float tensor "x" of <paramref name="shape"/> and
    /// writing float tensor "y" of the same shape.
    /// </summary>
    /// <param name="opType">The ONNX operator, e.g. "Sigmoid", "Gelu", "Softmax".</param>
    /// <param name="shape">The tensor's dimensions (each at least 1).</param>
    /// <param name="attributes">The node's attributes.</param>
    public static byte[] UnaryFloat(string opType, IReadOnlyList<long> shape, params Attribute[] attributes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(opType);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Count == 0 || shape.Any(d => d < 1))
            throw new ArgumentOutOfRangeException(nameof(shape), "every dimension must be at least 1; pass e.g. [n] or [rows, cols].");

        var node = new ProtoWriter();
        node.String(1, "x");            // NodeProto.input
        node.String(2, "y");            // NodeProto.output
        node.String(3, "node");         // NodeProto.name
        node.String(4, opType);         // NodeProto.op_type
        foreach (var a in attributes) node.Message(5, AttributeBytes(a)); // NodeProto.attribute

        var graph = new ProtoWriter();
        graph.Message(1, node.ToArray());            // GraphProto.node
        graph.String(2, opType.ToLowerInvariant());  // GraphProto.name
        graph.Message(11, ValueInfo("x", shape));    // GraphProto.input
        graph.Message(12, ValueInfo("y", shape));    // GraphProto.output

        var opset = new ProtoWriter();
        opset.String(1, "");       // OperatorSetIdProto.domain: the default ONNX domain
        opset.Varint(2, Opset);    // OperatorSetIdProto.version

        var model = new ProtoWriter();
        model.Varint(1, IrVersion);                // ModelProto.ir_version
        model.String(2, "GpuActivations.Bench");   // ModelProto.producer_name
        model.Message(7, graph.ToArray());         // ModelProto.graph
        model.Message(8, opset.ToArray());         // ModelProto.opset_import
        return model.ToArray();
    }

    static byte[] AttributeBytes(Attribute a)
    {
        var w = new ProtoWriter();
        w.String(1, a.Name); // AttributeProto.name
        if (a.Float is { } f) { w.Fixed32(2, f); w.Varint(20, 1); }                       // f, type = FLOAT
        else if (a.Int is { } i) { w.Varint(3, i); w.Varint(20, 2); }                     // i, type = INT
        else if (a.Text is { } s) { w.Bytes(4, Encoding.UTF8.GetBytes(s)); w.Varint(20, 3); } // s, type = STRING
        else throw new ArgumentException($"attribute '{a.Name}' has no value: give Float, Int or Text.", nameof(a));
        return w.ToArray();
    }

    static byte[] ValueInfo(string name, IReadOnlyList<long> shape)
    {
        var dims = new ProtoWriter();
        foreach (long d in shape)
        {
            var dim = new ProtoWriter();
            dim.Varint(1, d);             // TensorShapeProto.Dimension.dim_value
            dims.Message(1, dim.ToArray()); // TensorShapeProto.dim
        }
        var tensor = new ProtoWriter();
        tensor.Varint(1, 1);                 // TypeProto.Tensor.elem_type = FLOAT
        tensor.Message(2, dims.ToArray());   // TypeProto.Tensor.shape
        var type = new ProtoWriter();
        type.Message(1, tensor.ToArray());   // TypeProto.tensor_type
        var info = new ProtoWriter();
        info.String(1, name);                // ValueInfoProto.name
        info.Message(2, type.ToArray());     // ValueInfoProto.type
        return info.ToArray();
    }

    /// <summary>The protobuf wire format, the three wire types a model needs.</summary>
    public sealed class ProtoWriter
    {
        readonly MemoryStream stream = new();

        /// <summary>Field <paramref name="field"/> as a varint (wire type 0); negative values take ten bytes, as protobuf's int64 does.</summary>
        public void Varint(int field, long value)
        {
            Key(field, 0);
            Raw((ulong)value);
        }

        /// <summary>Field <paramref name="field"/> as a little-endian 32-bit float (wire type 5).</summary>
        public void Fixed32(int field, float value)
        {
            Key(field, 5);
            Span<byte> b = stackalloc byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(b, value);
            stream.Write(b);
        }

        /// <summary>Field <paramref name="field"/> as length-delimited bytes (wire type 2).</summary>
        public void Bytes(int field, ReadOnlySpan<byte> value)
        {
            Key(field, 2);
            Raw((ulong)value.Length);
            stream.Write(value);
        }

        /// <summary>A UTF-8 string field.</summary>
        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        /// <summary>An embedded message field.</summary>
        public void Message(int field, byte[] message) => Bytes(field, message);

        /// <summary>The bytes written so far.</summary>
        public byte[] ToArray() => stream.ToArray();

        void Key(int field, int wireType)
        {
            if (field < 1) throw new ArgumentOutOfRangeException(nameof(field), "protobuf field numbers start at 1.");
            Raw(((ulong)field << 3) | (uint)wireType);
        }

        void Raw(ulong v)
        {
            while (v >= 0x80)
            {
                stream.WriteByte((byte)(v | 0x80));
                v >>= 7;
            }
            stream.WriteByte((byte)v);
        }
    }
}
