using System.Reflection;
using System.Reflection.Emit;

namespace GpuActivations.Tests.Hardening;

/// <summary>A span argument over raw memory (any element type), for calls built by <see cref="ReflectionCalls"/>.</summary>
/// <param name="Pointer">The first element's address.</param>
/// <param name="Length">The length in elements of the span's type.</param>
public sealed record RawSpan(nint Pointer, int Length);

/// <summary>
/// Calls any public method through reflection, spans included: <see cref="MethodInfo.Invoke(object?, object?[])"/> cannot
/// pass <c>Span&lt;T&gt;</c> (a ref struct), so each call is compiled into a small dynamic method that builds the spans from
/// arrays or <see cref="RawSpan"/>s. Exceptions come out as thrown (not wrapped).
/// </summary>
public static unsafe class ReflectionCalls
{
    static readonly Dictionary<MethodBase, Action<object?[]>> Compiled = [];

    /// <summary>
    /// Calls <paramref name="method"/>: <paramref name="args"/> holds the instance first for an instance method, then one
    /// value per parameter (a span parameter takes a T[] or a <see cref="RawSpan"/>).
    /// </summary>
    public static void Call(MethodInfo method, params object?[] args)
    {
        Action<object?[]> call;
        lock (Compiled)
        {
            if (!Compiled.TryGetValue(method, out call!)) Compiled[method] = call = Compile(method);
        }
        call(args);
    }

    /// <summary>The exception <paramref name="call"/> throws, or null when it returns.</summary>
    public static Exception? Catch(Action call)
    {
        try { call(); }
        catch (Exception e) { return e; }
        return null;
    }

    /// <summary>Whether <paramref name="type"/> is <c>Span&lt;T&gt;</c> or <c>ReadOnlySpan&lt;T&gt;</c>.</summary>
    public static bool IsSpan(Type type) => type.IsGenericType
        && (type.GetGenericTypeDefinition() == typeof(Span<>) || type.GetGenericTypeDefinition() == typeof(ReadOnlySpan<>));

    static Action<object?[]> Compile(MethodInfo method)
    {
        var dm = new DynamicMethod("call_" + method.Name, typeof(void), [typeof(object[])], typeof(ReflectionCalls).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        int slot = 0;
        if (!method.IsStatic)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I4, slot++);
            il.Emit(OpCodes.Ldelem_Ref);
            il.Emit(OpCodes.Castclass, method.DeclaringType!);
        }
        foreach (var p in method.GetParameters())
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I4, slot++);
            il.Emit(OpCodes.Ldelem_Ref);
            Type t = p.ParameterType;
            if (IsSpan(t))
            {
                string maker = t.GetGenericTypeDefinition() == typeof(Span<>) ? nameof(MakeSpan) : nameof(MakeReadOnlySpan);
                il.Emit(OpCodes.Call, typeof(ReflectionCalls).GetMethod(maker, BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(t.GetGenericArguments()[0]));
            }
            else if (t.IsValueType) il.Emit(OpCodes.Unbox_Any, t);
            else il.Emit(OpCodes.Castclass, t);
        }
        il.Emit(method.IsStatic ? OpCodes.Call : OpCodes.Callvirt, method);
        if (method.ReturnType != typeof(void)) il.Emit(OpCodes.Pop);
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<Action<object?[]>>();
    }

    static Span<T> MakeSpan<T>(object? value) where T : unmanaged => value switch
    {
        null => default,
        T[] array => array,
        RawSpan raw => new Span<T>((void*)raw.Pointer, raw.Length),
        _ => throw new ArgumentException($"a span argument must be a {typeof(T).Name}[] or a RawSpan, not {value.GetType().Name}"),
    };

    static ReadOnlySpan<T> MakeReadOnlySpan<T>(object? value) where T : unmanaged => MakeSpan<T>(value);

    /// <summary>The public methods (declared, not inherited from object, no property accessors) of <paramref name="type"/>.</summary>
    public static IEnumerable<MethodInfo> PublicMethods(Type type) => type
        .GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
        .Where(m => !m.IsSpecialName)
        .OrderBy(m => m.ToString(), StringComparer.Ordinal);

    /// <summary>"Name(Type, Type, ...)", for messages.</summary>
    public static string Describe(MethodInfo m)
        => $"{m.DeclaringType!.Name}.{m.Name}({string.Join(", ", m.GetParameters().Select(p => Pretty(p.ParameterType) + " " + p.Name))})";

    static string Pretty(Type t) => t.IsGenericType
        ? $"{t.Name[..t.Name.IndexOf('`')]}<{string.Join(", ", t.GetGenericArguments().Select(Pretty))}>"
        : t.Name;
}
