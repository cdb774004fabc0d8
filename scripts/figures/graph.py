import sys,os,re
sys.path.insert(0,os.path.dirname(os.path.abspath(__file__))); from fnlen import lex,test_ranges,matching,is_ident
root=sys.argv[1]; src=os.path.join(root,'src'); g={}
for dp,dn,fn in os.walk(src):
    for f in fn:
        if not f.endswith('.rs'): continue
        p=os.path.relpath(os.path.join(dp,f),src)
        if p in ('lib.rs','main.rs'): continue
        mod=p.split('/')[0].removesuffix('.rs')
        code,_=lex(open(os.path.join(dp,f)).read()); tr=test_ranges(code)
        e=g.setdefault(mod,set())
        for m in re.finditer(r'crate::',code):
            a=m.start()
            if a>0 and (is_ident(code[a-1]) or code[a-1]=='$'): continue
            if any(s<=a<=t for s,t in tr): continue
            b=a+7
            if code[b:b+1]=='{':
                end=matching(code,b); grp=code[b+1:end]; d=0; items=['']
                for c in grp:
                    if c=='{': d+=1
                    elif c=='}': d-=1
                    elif c==',' and d==0: items.append(''); continue
                    items[-1]+=c
                for it in items:
                    n=re.match(r'\s*(\w+)',it)
                    if n and n.group(1)!='self': e.add(n.group(1))
            else:
                n=re.match(r'\w+',code[b:])
                if n: e.add(n.group(0))
        e.discard(mod)
mods=set(g)
for k in sorted(g): g[k]={x for x in g[k] if x in mods}; print(k,'->',sorted(g[k]))
# cycles: report strongly connected comps
idx={};low={};st=[];on=set();out=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in g[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: out.append(sorted(comp))
for v in sorted(g):
    if v not in idx: sc(v)
print('cycles (SCCs >1):',out or 'none')
